"""Official segmentation checkpoints: parity with cvnets' outputs, settings from the checkpoint, backbones
from classification checkpoints, helpful errors."""

import os

import numpy as np
import pytest

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from keras_mobilevitv2.weights import CheckpointMismatchError, import_checkpoint, load_pytorch_checkpoint

from conftest import OFFICIAL_REFERENCE

DEEPLAB = os.path.join(OFFICIAL_REFERENCE, "cvnets_deeplabv3_mobilevitv2_050")
CLASSIFIER = os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevitv2_050.pt")


@pytest.fixture(scope="module")
def reference():
    return np.load(DEEPLAB + ".npz")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("seg") / "deeplabv3.keras")
    assert cli_main(["import-weights", DEEPLAB + ".pt", "--model", "deeplabv3_mobilevitv2_050", "--out", out,
                     "--image-size", "256"]) == 0
    return out


def test_official_deeplabv3_matches_cvnets_at_full_resolution(imported, reference):
    model = keras.saving.load_model(imported, safe_mode=True)
    outputs = model(reference["x"] * 255.0)  # the saved model takes RGB in [0, 255]
    assert outputs["logits"].shape == reference["logits"].shape == (2, 256, 256, 21)
    assert np.abs(np.asarray(outputs["logits"]) - reference["logits"]).max() <= 1e-4
    # The auxiliary head is kept for fine-tuning, and computes cvnets' too.
    assert np.abs(np.asarray(outputs["aux_logits"]) - reference["aux_logits"]).max() <= 1e-4
    # The reference depends on its input: a port that ignored it would be far off.
    assert np.abs(reference["logits"][0] - reference["logits"][1]).max() > 0.5 * reference["logits"].std()


def test_settings_come_from_the_checkpoint_and_the_dataset_config(imported, reference):
    facts = kmv.get_preprocessing(keras.saving.load_model(imported, safe_mode=True))
    assert facts.task == "segmentation" and facts.input_size == (256, 256) and facts.input_max == 255.0
    assert facts.head["output_stride"] == int(reference["output_stride"]) == 16
    assert facts.head["atrous_rates"] == [6, 12, 18] and facts.head["channels"] == 512


def test_output_stride_and_size_can_be_overridden(tmp_path, reference):
    out = str(tmp_path / "os8.keras")
    assert cli_main(["import-weights", DEEPLAB + ".pt", "--model", "deeplabv3_mobilevitv2_050", "--out", out,
                     "--image-size", "128", "96", "--output-stride", "8", "--atrous-rates", "12", "24", "36"]) == 0
    model = keras.saving.load_model(out, safe_mode=True)
    assert model.input_shape == (None, 128, 96, 3)
    assert model.get_layer("seg_classifier").output.shape[1:3] == (16, 12)
    assert model.get_layer("layer4_1_local_dw_conv").dilation_rate == (2, 2)
    assert kmv.get_preprocessing(model).head["atrous_rates"] == [12, 24, 36]


def test_a_segmentation_backbone_starts_from_a_classification_checkpoint():
    classifier = kmv.create_model("mobilevitv2_050", classifier_activation=None)
    load_pytorch_checkpoint(classifier, CLASSIFIER)
    segmenter = kmv.create_model("deeplabv3_mobilevitv2_050", input_shape=(128, 128, 3))
    head_before = segmenter.get_layer("aspp_project_conv").get_weights()[0].copy()
    load_pytorch_checkpoint(segmenter, CLASSIFIER, skip_head=True)
    for name in ("stem_conv", "layer3_1_transformer1_attn_key", "layer5_1_proj_bn"):
        for got, expected in zip(segmenter.get_layer(name).get_weights(), classifier.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(segmenter.get_layer("aspp_project_conv").get_weights()[0], head_before)


def test_a_classification_checkpoint_without_skip_head_says_what_to_do():
    segmenter = kmv.create_model("deeplabv3_mobilevitv2_050", input_shape=(64, 64, 3))
    with pytest.raises(CheckpointMismatchError, match="holds a classification model"):
        load_pytorch_checkpoint(segmenter, CLASSIFIER)


def test_the_wrong_head_is_named(tmp_path):
    with pytest.raises(CheckpointMismatchError, match="looks like deeplabv3_mobilevitv2_050"):
        import_checkpoint(DEEPLAB + ".pt", "pspnet_mobilevitv2_050", str(tmp_path / "psp.keras"), image_size=64)
    assert not os.path.exists(tmp_path / "psp.keras")


def test_a_segmentation_checkpoint_loads_into_a_classifier_backbone():
    classifier = kmv.create_model("mobilevitv2_050", classes=3, input_shape=(64, 64, 3))
    load_pytorch_checkpoint(classifier, DEEPLAB + ".pt", skip_head=True)
    segmenter = kmv.create_model("deeplabv3_mobilevitv2_050", input_shape=(64, 64, 3))
    load_pytorch_checkpoint(segmenter, DEEPLAB + ".pt")
    np.testing.assert_array_equal(classifier.get_layer("layer4_0_expand_conv").get_weights()[0],
                                  segmenter.get_layer("layer4_0_expand_conv").get_weights()[0])


@pytest.mark.parametrize("argv, message", [
    (["--image-size", "1", "2", "3"], "takes one number (a square) or two"),
    (["--output-stride", "4"], "invalid choice: 4"),
])
def test_bad_flags_are_refused(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["import-weights", DEEPLAB + ".pt", "--model", "deeplabv3_mobilevitv2_050",
                  "--out", str(tmp_path / "m.keras"), *argv])
    assert message in capsys.readouterr().err
