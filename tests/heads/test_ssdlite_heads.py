"""SSDLite detectors: sizes against the official counts, outputs for any input size, saving, tf_keras."""

import numpy as np
import pytest

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.complexity import count_parameters
from keras_mobilevitv2.detection import ssd_anchors

from conftest import random_images

# The cvnets model zoo's figures (MobileViTv2, v0.2) and the MobileViT v1 paper's (v0.1), in millions (DENSE.md 3).
ZOO_MILLIONS = {"ssdlite_mobilevitv2_075": 3.6, "ssdlite_mobilevitv2_100": 5.6, "ssdlite_mobilevitv2_125": 8.2,
                "ssdlite_mobilevitv2_150": 11.3, "ssdlite_mobilevitv2_175": 14.9, "ssdlite_mobilevitv2_200": 19.1,
                "ssdlite_mobilevit_xxs": 1.8, "ssdlite_mobilevit_xs": 2.7, "ssdlite_mobilevit_s": 5.7}


def test_the_registry_knows_the_detectors():
    assert kmv.list_models("detection") == [f"ssdlite_{name}" for name in kmv.list_models()]


def test_parameters_equal_the_official_count():
    model = kmv.create_model("ssdlite_mobilevitv2_050")
    assert count_parameters(model) == 2_035_395
    assert kmv.get_preprocessing(model).class_names[:3] == ("person", "bicycle", "car")  # COCO's, cvnets' order


@pytest.mark.parametrize("name", list(ZOO_MILLIONS))
def test_parameters_match_the_model_zoo(name):
    assert round(count_parameters(kmv.create_model(name, input_shape=(64, 64, 3))) / 1e6, 1) == ZOO_MILLIONS[name]


@pytest.mark.parametrize("size", [(320, 320), (256, 192), (193, 161)])
def test_outputs_have_one_row_per_anchor_of_the_input_size(size, rng):
    model = kmv.create_model("ssdlite_mobilevitv2_050", classes=3, input_shape=(*size, 3))
    outputs = model(random_images(rng, 1, *size))
    anchors = ssd_anchors(*size, architecture="mobilevitv2_050")
    assert outputs["box_regressions"].shape == (1, len(anchors), 4)
    assert outputs["class_logits"].shape == (1, len(anchors), 4)  # 3 classes and the background


def test_keras_file_round_trips_and_tf_keras_builds_the_same(tmp_path, rng):
    model = kmv.create_model("ssdlite_mobilevit_xxs", class_names=["zero", "one"], input_shape=(128, 96, 3))
    path = str(tmp_path / "ssd.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    legacy = kmv.create_model("ssdlite_mobilevit_xxs", class_names=["zero", "one"], input_shape=(128, 96, 3),
                              keras_module="tf_keras")
    kmv.models.copy_weights(legacy, model)
    x = random_images(rng, 2, 128, 96)
    expected = model(x)
    for key in ("box_regressions", "class_logits"):
        np.testing.assert_array_equal(np.asarray(loaded(x)[key]), np.asarray(expected[key]))
        np.testing.assert_allclose(np.asarray(legacy(x)[key]), np.asarray(expected[key]), rtol=1e-4, atol=1e-4)
    facts = kmv.get_preprocessing(loaded)
    assert (facts.task, facts.class_names, facts.input_size) == ("detection", ("zero", "one"), (128, 96))
