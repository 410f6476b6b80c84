"""Segmentation models: sizes, the heads against the official formulas, any input size, saving, tf_keras."""

import numpy as np
import pytest

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2 import layers
from keras_mobilevitv2.complexity import count_parameters

from conftest import random_images
from numpy_reference import (numpy_adaptive_average_pool, numpy_batch_norm, numpy_conv2d, numpy_resize_bilinear,
                             relu)

# The cvnets model zoo's figures (without the auxiliary head), in millions, rounded to 0.1 (DENSE.md 3).
ZOO_MILLIONS = {
    ("deeplabv3_mobilevitv2_050", 21): 6.2, ("deeplabv3_mobilevitv2_100", 21): 13.3,
    ("deeplabv3_mobilevitv2_125", 21): 17.7, ("deeplabv3_mobilevitv2_150", 21): 22.6,
    ("deeplabv3_mobilevitv2_075", 150): 9.6, ("deeplabv3_mobilevitv2_175", 150): 28.1,
    ("deeplabv3_mobilevitv2_200", 150): 34.0,
    ("pspnet_mobilevitv2_050", 21): 3.6, ("pspnet_mobilevitv2_075", 21): 6.2, ("pspnet_mobilevitv2_100", 21): 9.4,
    ("pspnet_mobilevitv2_125", 21): 13.2, ("pspnet_mobilevitv2_150", 21): 17.5,
    ("pspnet_mobilevitv2_175", 150): 22.5,
    ("deeplabv3_mobilevit_xxs", 21): 1.9, ("deeplabv3_mobilevit_xs", 21): 2.9, ("deeplabv3_mobilevit_s", 21): 6.4,
}


def test_the_registry_knows_the_segmentation_models():
    names = kmv.list_models("segmentation")
    assert [n for n in names if n.startswith("deeplabv3_mobilevitv2")] == [
        f"deeplabv3_mobilevitv2_{w}" for w in ("050", "075", "100", "125", "150", "175", "200")]
    assert len([n for n in names if n.startswith("pspnet_mobilevitv2")]) == 7
    assert [n for n in names if "mobilevit_" in n] == [
        "deeplabv3_mobilevit_xxs", "deeplabv3_mobilevit_xs", "deeplabv3_mobilevit_s"]
    assert set(kmv.list_models(None)) == set(names) | set(kmv.list_models()) | set(kmv.list_models("detection"))


def test_parameters_equal_the_official_count():
    """The reference checkpoint's count (PyTorch's), with and without the auxiliary head."""
    model = kmv.create_model("deeplabv3_mobilevitv2_050")
    assert count_parameters(model) == 6_242_318
    assert count_parameters(kmv.create_model("deeplabv3_mobilevitv2_050", aux_head=True)) == 6_466_467


@pytest.mark.parametrize("name, classes", list(ZOO_MILLIONS))
def test_parameters_match_the_model_zoo(name, classes):
    model = kmv.create_model(name, classes=classes, input_shape=(64, 64, 3))
    assert round(count_parameters(model) / 1e6, 1) == ZOO_MILLIONS[(name, classes)]


@pytest.mark.parametrize("size", [32, 64, 23])
def test_adaptive_pooling_reproduces_pytorch_bins(size, rng):
    x = rng.normal(size=(2, size, size + 5, 3))
    for bins in (1, 2, 3, 6):
        got = np.asarray(layers.AdaptiveAveragePooling(bins)(x.astype(np.float32)))
        np.testing.assert_allclose(got, numpy_adaptive_average_pool(x, bins), rtol=1e-5, atol=1e-6)


def test_adaptive_pooling_bins_overlap_where_they_do_not_divide():
    matrix = layers.adaptive_pooling_matrix(32, 3)
    assert [tuple(np.flatnonzero(row)[[0, -1]]) for row in matrix] == [(0, 10), (10, 21), (21, 31)]
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, layers.AdaptiveAveragePooling(6)(inputs))  # bins computed in the graph
    x = np.random.default_rng(1).normal(size=(1, 32, 20, 4))
    np.testing.assert_allclose(np.asarray(model(x.astype(np.float32))), numpy_adaptive_average_pool(x, 6),
                               rtol=1e-5, atol=1e-6)


def _randomise(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma + rng.normal(0, 0.1, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif layer.name.endswith("_conv") or "classifier" in layer.name:
            layer.set_weights([rng.normal(0, 0.05, w.shape) for w in layer.get_weights()])


def _weights(model, name):
    return [np.asarray(w, np.float64) for w in model.get_layer(name).get_weights()]


def _conv_bn_relu(model, x, name, dilation=1):
    (kernel,), bn = _weights(model, f"{name}_conv"), _weights(model, f"{name}_bn")
    return relu(numpy_batch_norm(numpy_conv2d(x, kernel, dilation=dilation), *bn))


def _head_input_and_output(model, x):
    """The head's input (P5), its logits before upsampling and the model's output, for images ``x``."""
    first = next(layer for layer in model.layers if layer.name in ("aspp_1x1_conv", "psp_pool1"))
    probe = keras.Model(model.input, [first.input, model.get_layer("seg_classifier").output, model.output])
    return (np.asarray(t, np.float64) for t in probe(x))


def test_pspnet_head_computes_the_official_formula(rng):
    """PSPNet on a 128x128 image at output stride 16: an 8x8 map, where bins 3 and 6 overlap."""
    model = kmv.create_model("pspnet_mobilevitv2_050", classes=5, input_shape=(128, 128, 3))
    _randomise(model, rng)
    features, low, high = _head_input_and_output(model, random_images(rng, 1, 128, 128))
    assert features.shape[1:3] == (8, 8)
    branches = [features]
    for bins in (1, 2, 3, 6):
        pooled = _conv_bn_relu(model, numpy_adaptive_average_pool(features, bins), f"psp_branch{bins}")
        branches.append(numpy_resize_bilinear(pooled, 8, 8, align_corners=True))
    fused = _conv_bn_relu(model, np.concatenate(branches, axis=-1), "psp_fusion")
    expected = numpy_conv2d(fused, *_weights(model, "seg_classifier"))
    np.testing.assert_allclose(low, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(high, numpy_resize_bilinear(expected, 128, 128, align_corners=True),
                               rtol=1e-4, atol=1e-4)


def test_mobilevit_v1_deeplabv3_computes_the_official_formula(rng):
    """v1's released DeepLabv3 (cvnets v0.1): ASPP 256 with rates 6, 12, 18 on an undilated stride-16 map,
    upsampled without align_corners."""
    model = kmv.create_model("deeplabv3_mobilevit_xxs", classes=4, input_shape=(96, 128, 3))
    _randomise(model, rng)
    features, low, high = _head_input_and_output(model, random_images(rng, 1, 96, 128))
    assert features.shape[1:] == (6, 8, 80)
    branches = [_conv_bn_relu(model, features, "aspp_1x1")]
    branches += [_conv_bn_relu(model, features, f"aspp_atrous{i}", rate) for i, rate in enumerate((6, 12, 18), 1)]
    pooled = _conv_bn_relu(model, features.mean(axis=(1, 2), keepdims=True), "aspp_pool")
    branches.append(np.broadcast_to(pooled, branches[0].shape))
    projected = _conv_bn_relu(model, np.concatenate(branches, axis=-1), "aspp_project")
    assert projected.shape[-1] == 256
    expected = numpy_conv2d(projected, *_weights(model, "seg_classifier"))
    np.testing.assert_allclose(low, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(high, numpy_resize_bilinear(expected, 96, 128, align_corners=False),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["deeplabv3_mobilevitv2_050", "pspnet_mobilevitv2_050"])
def test_any_input_size_gives_logits_at_that_size(name, rng):
    flexible = kmv.create_model(name, classes=3, input_shape=(None, None, 3))
    _randomise(flexible, rng)
    for size in [(96, 64), (100, 132)]:
        fixed = kmv.create_model(name, classes=3, input_shape=(*size, 3))
        kmv.models.copy_weights(fixed, flexible)
        x = random_images(rng, 2, *size)
        out = np.asarray(fixed(x))
        assert out.shape == (2, *size, 3)
        np.testing.assert_allclose(out, np.asarray(flexible(x)), rtol=1e-4, atol=1e-4)


def test_keras_file_round_trips_in_safe_mode_with_its_settings(tmp_path, rng):
    model = kmv.create_model("pspnet_mobilevitv2_050", class_names=["bg", "cat", "dog"], output_stride=8,
                             aux_head=True, input_shape=(64, 96, 3))
    _randomise(model, rng)
    path = str(tmp_path / "seg.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = random_images(rng, 1, 64, 96)
    for key in ("logits", "aux_logits"):
        np.testing.assert_array_equal(np.asarray(loaded(x)[key]), np.asarray(model(x)[key]))
    facts = kmv.get_preprocessing(loaded)
    assert (facts.task, facts.class_names, facts.architecture) == ("segmentation", ("bg", "cat", "dog"),
                                                                   "mobilevitv2_050")
    assert facts.head == {"model": "pspnet_mobilevitv2_050", "output_stride": 8, "channels": 512, "dropout": 0.1,
                          "align_corners": True, "pool_sizes": [1, 2, 3, 6]}
    inference = kmv.models.rebuild_model(loaded, input_shape=(64, 96, 3), aux_head=False)
    np.testing.assert_array_equal(np.asarray(inference(x)), np.asarray(model(x)["logits"]))


def test_tf_keras_builds_the_same_segmenter(rng):
    model = kmv.create_model("deeplabv3_mobilevitv2_050", classes=4, aux_head=True, input_shape=(64, 64, 3))
    legacy = kmv.create_model("deeplabv3_mobilevitv2_050", classes=4, aux_head=True, input_shape=(64, 64, 3),
                              keras_module="tf_keras")
    _randomise(model, rng)
    kmv.models.copy_weights(legacy, model)
    x = random_images(rng, 1, 64, 64)
    got, expected = legacy(x, training=False), model(x, training=False)
    for key in ("logits", "aux_logits"):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(classes=3, class_names=["a"]), "1 class names given for 3"),
    (dict(weights="voc"), "cannot be downloaded"),
    (dict(input_shape=(64, 64, 4)), "(height, width, 3)"),
])
def test_bad_arguments_get_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kmv.create_model("deeplabv3_mobilevitv2_050", **kwargs)
