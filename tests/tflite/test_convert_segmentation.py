"""Segmentation models through `mobilevitv2 convert`: the official outputs survive, builtin ops only."""

import os

import numpy as np

from keras_mobilevitv2.cli import main as cli_main
from mobilevitv2_tflite.convert import inspect_tflite
from mobilevitv2_tflite.metadata import read_metadata
from mobilevitv2_tflite.runtime import TFLiteClassifier

from conftest import OFFICIAL_REFERENCE

DEEPLAB = os.path.join(OFFICIAL_REFERENCE, "cvnets_deeplabv3_mobilevitv2_050")


def test_official_deeplabv3_survives_conversion(tmp_path):
    reference = np.load(DEEPLAB + ".npz")
    keras_file, tflite_file = str(tmp_path / "deeplabv3.keras"), str(tmp_path / "deeplabv3.tflite")
    assert cli_main(["import-weights", DEEPLAB + ".pt", "--model", "deeplabv3_mobilevitv2_050", "--out", keras_file,
                     "--image-size", "256"]) == 0
    assert cli_main(["convert", keras_file, "--out", tflite_file]) == 0
    runner = TFLiteClassifier(tflite_file)
    for image, expected in zip(reference["x"] * 255.0, reference["logits"]):
        assert np.abs(runner.logits(image) - expected).max() <= 1e-4  # full resolution, the aux head left out
    report = inspect_tflite(tflite_file)
    assert report.output_details["shape"] == [1, 256, 256, 21]
    assert not any(op.startswith(("FlexOp", "Custom")) or op == "CUSTOM" for op in report.ops)
    assert report.ops["CONV_2D"] >= 1 and "SPACE_TO_BATCH_ND" not in report.ops  # atrous convolutions in one op
    facts = read_metadata(tflite_file)
    assert facts["task"] == "segmentation" and facts["head"]["output_stride"] == 16
