"""The zoo: sizes, input shapes, Keras 3 and tf_keras, saving, preprocessing facts."""


import numpy as np
import pytest

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.architectures import ARCHITECTURES
from keras_mobilevitv2.complexity import count_parameters, describe

from conftest import random_images

SMALL_MODELS = ["mobilevitv2_050", "mobilevit_xxs"]


def test_list_models_names_the_ten_models():
    assert kmv.list_models() == [
        "mobilevitv2_050", "mobilevitv2_075", "mobilevitv2_100", "mobilevitv2_125", "mobilevitv2_150",
        "mobilevitv2_175", "mobilevitv2_200", "mobilevit_xxs", "mobilevit_xs", "mobilevit_s"]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_parameters_and_gmacs_match_the_official_models(name):
    info = describe(name, 256)
    reference = ARCHITECTURES[name]
    assert info["params"] == reference.reference_params
    assert abs(info["gmacs"] / reference.reference_gmacs - 1) < 0.01
    assert info["output_shape"] == [None, 1000]


def test_public_builders_match_create_model():
    assert count_parameters(kmv.MobileViTv2(0.75)) == ARCHITECTURES["mobilevitv2_075"].reference_params
    assert count_parameters(kmv.MobileViT("xs")) == ARCHITECTURES["mobilevit_xs"].reference_params
    assert kmv.MobileViTv2(0.5).name == "mobilevitv2_050"


@pytest.mark.parametrize("name", SMALL_MODELS)
@pytest.mark.parametrize("size", [(224, 224), (256, 256), (320, 320), (224, 320), (193, 161)])
def test_fixed_sizes_agree_with_the_any_size_model(name, size, rng):
    flexible = kmv.create_model(name, input_shape=(None, None, 3))
    fixed = kmv.create_model(name, input_shape=(*size, 3))
    fixed.set_weights(flexible.get_weights())
    x = random_images(rng, 2, *size)
    out_fixed = np.asarray(fixed(x))
    assert out_fixed.shape == (2, 1000)
    np.testing.assert_allclose(out_fixed, np.asarray(flexible(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_fixed.sum(axis=1), 1.0, rtol=1e-5)  # softmax by default


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_tf_keras_build_computes_the_same_outputs(name, rng):
    import tf_keras

    model = kmv.create_model(name, classifier_activation=None)
    legacy = kmv.create_model(name, classifier_activation=None, keras_module="tf_keras")
    assert isinstance(legacy, tf_keras.Model)
    assert [w.shape for w in legacy.weights] == [tuple(w.shape) for w in model.weights]
    _randomise_batch_norm(model, rng)
    legacy.set_weights(model.get_weights())
    x = random_images(rng, 1, 256, 256)
    np.testing.assert_allclose(np.asarray(legacy(x, training=False)), np.asarray(model(x, training=False)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", SMALL_MODELS)
@pytest.mark.parametrize("shape", [(224, 224, 3), (224, 320, 3), (None, None, 3)])
def test_tf_keras_agrees_at_other_sizes(name, shape, rng):
    model = kmv.create_model(name, input_shape=shape, classifier_activation=None)
    legacy = kmv.create_model(name, input_shape=shape, classifier_activation=None, keras_module="tf_keras")
    legacy.set_weights(model.get_weights())
    x = random_images(rng, 2, *(shape[:2] if shape[0] else (224, 288)))
    np.testing.assert_allclose(np.asarray(legacy(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


def _randomise_batch_norm(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma + rng.normal(0, 0.1, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_keras_file_round_trips_in_safe_mode(name, tmp_path, rng):
    model = kmv.create_model(name, classes=3, class_names=["cat", "dog", "bird"], input_shape=(224, 224, 3))
    _randomise_batch_norm(model, rng)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = random_images(rng, 2, 224, 224)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    facts = kmv.get_preprocessing(loaded)
    assert facts == kmv.PreprocessingConfig(input_size=(224, 224), crop_fraction=0.888, interpolation="bicubic",
                                            input_max=255.0, class_names=("cat", "dog", "bird"), architecture=name)
    assert facts.resize_size == (252, 252)


def test_a_saved_model_loads_in_a_new_process_after_importing_the_package(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    path = str(tmp_path / "m.keras")
    kmv.create_model("mobilevit_xxs", input_shape=(64, 64, 3)).save(path)
    code = ("import keras, keras_mobilevitv2; m = keras.saving.load_model(%r, safe_mode=True); "
            "print(keras_mobilevitv2.get_preprocessing(m).architecture)" % path)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip().splitlines()[-1] == "mobilevit_xxs"


def test_include_preprocessing_scales_inside(rng):
    with_scaling = kmv.create_model("mobilevitv2_050", classifier_activation=None)
    without = kmv.create_model("mobilevitv2_050", classifier_activation=None, include_preprocessing=False)
    without.set_weights(with_scaling.get_weights())
    x = random_images(rng, 1, 256, 256)
    np.testing.assert_allclose(np.asarray(with_scaling(x)), np.asarray(without(x / 255.0)), rtol=1e-5, atol=1e-5)
    assert kmv.get_preprocessing(without).input_max == 1.0


def test_headless_models_and_input_tensor():
    features = kmv.create_model("mobilevitv2_050", include_top=False)
    assert features.output_shape == (None, 8, 8, 256)
    assert kmv.create_model("mobilevit_xxs", include_top=False, pooling="avg").output_shape == (None, 320)
    assert kmv.create_model("mobilevit_xxs", include_top=False, pooling="max").output_shape == (None, 320)
    image = keras.Input((160, 160, 3))
    model = kmv.MobileViTv2(0.5, input_tensor=image, classes=7)
    assert model.input_shape == (None, 160, 160, 3) and model.output_shape == (None, 7)


def test_weights_argument_loads_a_keras_weights_file(tmp_path, rng):
    model = kmv.create_model("mobilevitv2_050")
    _randomise_batch_norm(model, rng)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    loaded = kmv.create_model("mobilevitv2_050", weights=path)
    x = random_images(rng, 1, 256, 256)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize("call, message", [
    (lambda: kmv.create_model("mobilevitv3"), "unknown model 'mobilevitv3'"),
    (lambda: kmv.MobileViT("m"), "variant must be one of"),
    (lambda: kmv.create_model("mobilevit_xxs", input_shape=(256, 256, 1)), "(height, width, 3)"),
    (lambda: kmv.create_model("mobilevit_xxs", classes=3, class_names=["a"]), "1 class names given for 3"),
    (lambda: kmv.create_model("mobilevit_xxs", weights="imagenet"), "cannot be downloaded"),
    (lambda: kmv.create_model("mobilevit_xxs", weights="missing.pt"), "not found: missing.pt"),
    (lambda: kmv.create_model("mobilevit_xxs", include_top=False, pooling="mean"), "pooling must be"),
    (lambda: kmv.create_model("mobilevit_xxs", keras_module="jax"), "keras_module must be one of"),
])
def test_bad_arguments_get_clear_errors(call, message):
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        call()
    assert message in str(error.value)


def test_class_names_set_the_number_of_classes():
    model = kmv.create_model("mobilevit_xxs", class_names=[str(i) for i in range(10)])
    assert model.output_shape == (None, 10)
    assert kmv.get_preprocessing(model).class_names == tuple(str(i) for i in range(10))


def test_any_width_multiplier_builds():
    model = kmv.MobileViTv2(0.6)
    assert model.name == "mobilevitv2_060"
