"""Converts timm's models to LiteRT with Google's litert-torch, for the peer timing.

Float32, and static int8 (int8 weights and activations) through ai-edge-quantizer, calibrated on the images
given. Random weights, eval mode, no zero residual branch (timm_models.py).

Runs in its own virtualenv (PyTorch is never a dependency of this kit):

    python -m venv venv_litert && venv_litert/bin/pip install torch==2.14.1 torchvision==0.29.1 timm \\
        litert-torch==0.10.0 ai-edge-quantizer
    venv_litert/bin/python tools/timm_litert.py OUT_DIR --models mobilevitv2_050 mobilevit_xxs \\
        [--size 256] [--calibration images.npy]

Each model takes NCHW float32 RGB in [0, 1] (timm's MobileViT mean 0, std 1) at batch one. ``--calibration``:
an ``.npy`` of NHWC RGB images in [0, 255] at the model's size; without it, int8 is not written. Writes
``OUT_DIR/{model}_litert_{fp32,int8}.tflite`` and prints each path.
"""

import argparse
import os

import torch
import torch.nn.functional as F
from timm.models import mobilevit

from timm_models import calibration_inputs, random_timm_model


def _broadcast_self_attn(self, x):
    """timm's LinearSelfAttention with plain broadcasting in place of ``expand_as``, which litert-torch 0.10
    refuses ("operands don't have broadcast-compatible shapes"); the same numbers."""
    query, key, value = self.qkv_proj(x).split([1, self.embed_dim, self.embed_dim], dim=1)
    context_scores = self.attn_drop(F.softmax(query, dim=-1))
    context_vector = (key * context_scores).sum(dim=-1, keepdim=True)
    return self.out_drop(self.out_proj(F.relu(value) * context_vector))


def main():
    import ai_edge_quantizer as aeq
    import litert_torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--calibration", help=".npy of NHWC RGB images in [0, 255]")
    args = parser.parse_args()
    mobilevit.LinearSelfAttention._forward_self_attn = _broadcast_self_attn
    calibration = calibration_inputs(args.calibration)
    for name in args.models:
        model = random_timm_model(name)
        example = (torch.rand(1, 3, args.size, args.size),)
        float_path = os.path.join(args.out, f"{name}_litert_fp32.tflite")
        with torch.no_grad():
            litert_torch.convert(model, example).export(float_path)
        print(float_path, flush=True)
        if calibration is None:
            continue
        quantizer = aeq.Quantizer(float_path)
        quantizer.load_quantization_recipe(aeq.recipe.static_wi8_ai8())
        signature, input_name = _signature_and_input(float_path)
        ranges = quantizer.calibrate({signature: [{input_name: image} for image in calibration]})
        int8_path = os.path.join(args.out, f"{name}_litert_int8.tflite")
        quantizer.quantize(ranges).export_model(int8_path, overwrite=True)
        print(int8_path, flush=True)


def _signature_and_input(path):
    """The first signature of a ``.tflite`` file and the name of its input."""
    from ai_edge_litert.interpreter import Interpreter

    signature, io = next(iter(Interpreter(model_path=path).get_signature_list().items()))
    return signature, io["inputs"][0]


if __name__ == "__main__":
    main()
