"""Conversion-time graph rewrites compute what the model computes."""

import keras
import numpy as np
import pytest

import keras_mobilevitv2 as kmv
from mobilevitv2_tflite.graph import fuse_pointwise_convolutions

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
