"""Model size and cost as the papers count them."""

import math

from .models import create_model

_NON_PARAMETERS = ("moving_mean", "moving_variance")  # BatchNorm statistics: PyTorch does not count them


def count_parameters(model):
    """Parameters as PyTorch counts them: every weight but BatchNorm's running statistics."""
    return sum(
        math.prod(weight.shape) for weight in model.weights
        if not weight.name.split("/")[-1].split(":")[0].endswith(_NON_PARAMETERS))


def count_macs(model):
    """Multiply-accumulates of one image, as ``(layers, attention)``.

    ``layers``: convolutions and dense layers, the figure the papers, timm and
    SPEC.md report. ``attention``: MobileViT v1's token-to-token products
    (q k^T and scores v), which those figures leave out and which grow with the
    square of the number of tokens; MobileViTv2 has none. Element-wise work
    (norms, activations, the separable attention's weighting) is not counted.
    The model must have a fixed input size.
    """
    if any(s is None for s in model.input_shape[1:3]):
        raise ValueError("count_macs needs a model with a fixed input size")
    layers = attention = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "AtrousConv2D", "DepthwiseConv2D", "Dense"):
            positions = math.prod(layer.output.shape[1:-1])
            layers += positions * math.prod(layer.weights[0].shape)
        elif kind == "MultiHeadPatchAttention":
            _, num_patches, area, qkv = layer.input.shape
            attention += 2 * num_patches * num_patches * area * (qkv // 3)
    return layers, attention


def describe(name, image_size=256, keras_module="keras"):
    """Parameters, GMACs and output shape(s) of a registry model at ``image_size`` (an int or (height, width))."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    model = create_model(name, input_shape=(height, width, 3), keras_module=keras_module)
    layer_macs, attention_macs = count_macs(model)
    return {
        "model": name,
        "image_size": [height, width],
        "params": count_parameters(model),
        "gmacs": layer_macs / 1e9,
        "attention_gmacs": attention_macs / 1e9,
        "output_shape": ({name: list(tensor.shape) for name, tensor in model.output.items()}
                         if isinstance(model.output, dict) else list(model.output_shape)),
    }
