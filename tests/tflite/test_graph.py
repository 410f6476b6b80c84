"""Conversion-time graph rewrites compute what the model computes."""

import keras
import numpy as np
import pytest

import keras_mobilevitv2 as kmv
from mobilevitv2_tflite.graph import (fuse_pointwise_convolutions, rewrite_for_conversion, strips_for,
                                      tile_high_resolution_stages)

from conftest import random_images


def _randomised(model, rng):
    """Weights and BatchNorm statistics moved off their initial values, so that every folded term matters."""
    weights = []
    for variable, value in zip(model.weights, model.get_weights()):
        if "moving_variance" in variable.path:
            weights.append(rng.uniform(0.5, 1.5, value.shape).astype(np.float32))
        else:
            weights.append((value + rng.normal(0, 0.05, value.shape)).astype(np.float32))
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("name, expected", [
    ("mobilevitv2_050", [["layer1_0_project_conv", "layer1_0_project_bn", "layer2_0_expand_conv", "layer2_0_expand_bn"],
                         ["layer3_1_proj_conv", "layer3_1_proj_bn", "layer4_0_expand_conv", "layer4_0_expand_bn"],
                         ["layer4_1_proj_conv", "layer4_1_proj_bn", "layer5_0_expand_conv", "layer5_0_expand_bn"]]),
    # MobileViT v1's blocks end in an activated fusion conv, and XXS's layer 1 has a residual: nothing fuses.
    ("mobilevit_xxs", []),
    ("mobilevit_s", [["layer1_0_project_conv", "layer1_0_project_bn", "layer2_0_expand_conv", "layer2_0_expand_bn"]]),
])
def test_fused_pointwise_convolutions_compute_the_same_logits(name, expected, rng):
    model = _randomised(kmv.create_model(name, input_shape=(96, 128, 3), classifier_activation=None), rng)
    fused_model, fused = fuse_pointwise_convolutions(model)
    assert fused == expected
    if not expected:
        assert fused_model is model
        return
    count = lambda m, kind: sum(type(layer).__name__ == kind for layer in m.layers)  # noqa: E731
    assert count(fused_model, "Conv2D") == count(model, "Conv2D") - len(expected)
    assert count(fused_model, "BatchNormalization") == count(model, "BatchNormalization") - 2 * len(expected)
    images = random_images(rng, 2, 96, 128)
    reference = np.asarray(model(images, training=False))
    assert np.abs(np.asarray(fused_model(images)) - reference).max() <= 1e-5 * max(1.0, np.abs(reference).max())
    again, nothing = fuse_pointwise_convolutions(fused_model)
    assert nothing == [] and again is fused_model


def test_shared_or_activated_outputs_are_not_fused():
    inputs = keras.Input((8, 8, 4))
    shared = keras.layers.Conv2D(6, 1, name="shared")(inputs)  # read by two layers: stays
    a = keras.layers.Conv2D(5, 1, name="a")(shared)
    b = keras.layers.Conv2D(5, 1, name="b")(shared)
    activated = keras.layers.Conv2D(5, 1, activation="relu", name="activated")(keras.layers.Add()([a, b]))
    out = keras.layers.Conv2D(3, 1, name="after_relu")(activated)  # a ReLU between: stays
    model = keras.Model(inputs, out)
    assert fuse_pointwise_convolutions(model) == (model, [])


@pytest.mark.parametrize("name, height, width, strips", [
    ("mobilevitv2_050", 96, 128, 3),  # the stride-8 map has 12 rows: strips of 4
    ("mobilevitv2_075", 136, 72, 5),  # 17 rows: strips of 3 and 4, a height no stride divides
    ("mobilevit_xxs", 64, 64, 8),  # one row per strip: every strip touches a border or two halos
    ("mobilevit_s", 72, 40, 2),
])
def test_row_strips_compute_the_same_logits(name, height, width, strips, rng):
    model = _randomised(kmv.create_model(name, input_shape=(height, width, 3), classifier_activation=None), rng)
    tiled_model, tiled = tile_high_resolution_stages(model, strips)
    # Everything before the first attention block's resize is local; it ends with layer 3's downsampling block.
    assert tiled[0] == "preprocessing" and tiled[-1] == "layer3_0_project_bn"
    assert "layer3_1_resize" in [layer.name for layer in tiled_model.layers]
    kinds = [type(layer).__name__ for layer in tiled_model.layers]
    assert kinds.count("Cropping2D") >= strips - 1 and kinds.count("Concatenate") >= 1
    images = random_images(rng, 2, height, width)
    reference = np.asarray(model(images, training=False))
    assert np.abs(np.asarray(tiled_model(images)) - reference).max() <= 1e-5 * max(1.0, np.abs(reference).max())


def test_strips_follow_the_feature_map_size_and_refuse_too_many():
    assert strips_for(kmv.create_model("mobilevitv2_050", input_shape=(256, 256, 3))) == 1
    # 1024: layer 2's padded 514x514x64 float32 map is 68 MB, one strip per 8 MiB.
    assert strips_for(kmv.create_model("mobilevitv2_050", input_shape=(1024, 1024, 3))) == 8
    # A panorama 32 pixels high: 68 MB maps, but the stride-8 map has 4 rows, so 4 strips of one row.
    assert strips_for(kmv.create_model("mobilevitv2_050", input_shape=(32, 32768, 3))) == 4
    model = kmv.create_model("mobilevitv2_050", input_shape=(64, 64, 3))
    assert tile_high_resolution_stages(model, 1) == (model, [])
    with pytest.raises(ValueError, match="9 strips of 8 rows .*layer3_0_project_bn.* at most 8"):
        tile_high_resolution_stages(model, 9)
    with pytest.raises(ValueError, match="strips must be 'auto' or a whole number >= 1, got 0"):
        rewrite_for_conversion(model, strips=0)


def test_rewrites_for_conversion_choose_strips_by_precision():
    model = kmv.create_model("mobilevitv2_050", input_shape=(512, 512, 3))
    _, float_rewrites = rewrite_for_conversion(model, "fp16")
    _, int8_rewrites = rewrite_for_conversion(model, "int8")
    assert len(float_rewrites.fused) == len(int8_rewrites.fused) == 3
    assert float_rewrites.strips == 2 and len(float_rewrites.tiled) == 37
    assert int8_rewrites.strips == 1 and int8_rewrites.tiled == []
    assert "run in 2 row strips" in float_rewrites.summary()
