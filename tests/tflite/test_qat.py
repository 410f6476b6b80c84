"""Quantization-aware training on the tf_keras build of the same network, to a full-integer file."""

import numpy as np

from mobilevitv2_tflite.metadata import read_metadata
from mobilevitv2_tflite.qat import quantization_aware_training
from mobilevitv2_tflite.runtime import TFLiteClassifier, evaluate


def test_qat_fine_tunes_and_writes_a_full_integer_model(digits_model, tmp_path):
    model_path, data = digits_model
    path, report, history = quantization_aware_training(model_path, data, str(tmp_path / "qat"), epochs=1,
                                                        calibration_steps=20)
    assert not any(op.startswith(("FLEX", "CUSTOM")) for op in report.ops), report.ops
    assert "CONV_2D" in report.ops and len(history["loss"]) == 1
    classifier = TFLiteClassifier(path)
    assert classifier.input["dtype"] == np.uint8 and classifier.output["dtype"] == np.uint8
    assert read_metadata(path)["precision"] == "int8-qat"
    float_top1 = evaluate(model_path, data, limit=120, progress=False)["top1"]
    assert evaluate(path, data, limit=120, progress=False)["top1"] >= float_top1 - 0.05
