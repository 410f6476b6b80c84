"""Exports timm's models to ONNX for the peer timing. Runs with PyTorch and timm.

Random weights, eval mode, no zero residual branch (timm_models.py).

Each model takes NCHW float32 RGB in [0, 1] at a fixed batch of one and size.

    python tools/timm_onnx.py OUT_DIR --models mobilevitv2_050 mobilevit_xxs [--size 256]
"""

import argparse
import os

import torch

from timm_models import random_timm_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    for name in args.models:
        model = random_timm_model(name)
        example = torch.rand(1, 3, args.size, args.size)
        path = os.path.join(args.out, f"{name}.onnx")
        with torch.no_grad():
            torch.onnx.export(model, (example,), path, input_names=["image"], output_names=["logits"],
                              opset_version=17, dynamo=False)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
