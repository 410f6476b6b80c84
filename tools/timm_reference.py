"""Makes timm reference checkpoints and outputs for the parity checks. Runs with PyTorch and timm.

For each model: a randomly initialised timm model (weights perturbed, BatchNorm
statistics randomised so that every tensor matters) in eval mode, saved as
``NAME.pth`` (torch.save of the state dict) and ``NAME.safetensors``, and
``NAME.npz`` with input images ``images_HxW`` (NHWC, RGB uint8; timm takes them
divided by 255) and timm's logits ``logits_HxW`` for every size.

    python tools/timm_reference.py OUT_DIR --models mobilevitv2_050 mobilevit_xxs --sizes 256x256 224x224 224x320
"""

import argparse
import os

import numpy as np
import safetensors.torch
import timm
import torch


def randomise(model, generator):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)


def write_format_fixtures(out, generator):
    """Small files that exercise the reader: wrappers, prefixes, dtypes, strides, an EMA copy."""
    plain = torch.randn((3, 4), generator=generator)
    strided = torch.randn((4, 5), generator=generator).t()  # not contiguous: strides (1, 5)
    tensors = {
        "float32": plain,
        "float16": torch.randn((2, 3), generator=generator).half(),
        "bfloat16": torch.randn((2, 3), generator=generator).bfloat16(),
        "int64": torch.arange(6).reshape(2, 3),
        "scalar": torch.tensor(7.5),
        "offset": torch.randn((10,), generator=generator)[4:7],  # a view with a storage offset
    }
    wrapped = {
        "epoch": 3,
        "arch": "test",
        "state_dict": {f"module.{k}": v for k, v in {**tensors, "strided": strided}.items()},
        "state_dict_ema": {f"module.{k}": v + 1 for k, v in {"float32": plain}.items()},
    }
    torch.save(wrapped, os.path.join(out, "formats.pth"))
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()},
                                os.path.join(out, "formats.safetensors"))
    expected = {k: v.float().numpy() for k, v in {**tensors, "strided": strided}.items()}
    expected["ema_float32"] = (plain + 1).numpy()
    np.savez(os.path.join(out, "formats.npz"), **expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--sizes", nargs="+", default=["256x256", "224x224", "224x320"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format-fixtures", action="store_true",
                        help="also write formats.pth / .safetensors / .npz for the reader's tests")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.format_fixtures:
        write_format_fixtures(args.out, torch.Generator().manual_seed(args.seed))
    for name in args.models:
        generator = torch.Generator().manual_seed(args.seed)
        model = timm.create_model(name, pretrained=False)
        randomise(model, generator)
        model.eval()
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        torch.save(state, os.path.join(args.out, f"{name}.pth"))
        safetensors.torch.save_file(state, os.path.join(args.out, f"{name}.safetensors"))
        arrays = {}
        for size in args.sizes:
            height, width = (int(s) for s in size.split("x"))
            images = torch.randint(0, 256, (args.batch, height, width, 3), generator=generator, dtype=torch.uint8)
            with torch.no_grad():
                logits = model(images.permute(0, 3, 1, 2).float() / 255.0)
            arrays[f"images_{size}"] = images.numpy()
            arrays[f"logits_{size}"] = logits.numpy().astype(np.float32)
        np.savez_compressed(os.path.join(args.out, f"{name}.npz"), **arrays)
        print(f"{name}: {sum(p.numel() for p in model.parameters()):,} params, sizes {args.sizes}", flush=True)


if __name__ == "__main__":
    main()
