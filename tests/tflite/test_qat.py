"""Quantization-aware training on the tf_keras build of the same network, converted by ``convert``."""

import os
import shutil

import numpy as np
import pytest

from keras_mobilevitv2.cli import main as cli_main
from keras_mobilevitv2.data import make_eval_dataset, scan_image_folder
from mobilevitv2_tflite.convert import ConversionError, load_keras_model, xnnpack_delegation
from mobilevitv2_tflite.metadata import read_metadata
from mobilevitv2_tflite.qat import calibrate_ranges, quantization_aware_model, quantization_aware_training
from mobilevitv2_tflite.runtime import TFLiteClassifier, evaluate


def _digit_batches(model, data, count=256):
    folder = scan_image_folder(data, progress=False)
    folder = folder.subset(np.linspace(0, len(folder) - 1, count).round().astype(int))
    dataset = make_eval_dataset(folder, model.input_shape[1:3], 32, cache_bytes=0)
    return [x.numpy() for x, _ in dataset]


def test_calibrated_fake_quantization_follows_the_float_model(digits_model):
    model_path, data = digits_model
    model = load_keras_model(model_path)
    batches = _digit_batches(model, data)
    float_logits = np.concatenate([np.asarray(model(x, training=False)) for x in batches])

    def agreement_and_difference(quantized):
        logits = np.concatenate([np.asarray(quantized(x, training=False)) for x in batches])
        return (np.mean(logits.argmax(-1) == float_logits.argmax(-1)),
                np.mean(np.abs(logits - float_logits)))

    quantized = quantization_aware_model(model)
    uncalibrated = agreement_and_difference(quantized)  # tfmot's starting ranges, [-6, 6] everywhere
    calibrate_ranges(quantized, batches[:4])
    calibrated = agreement_and_difference(quantized)
    assert calibrated[0] >= 0.95, calibrated
    assert calibrated[1] < uncalibrated[1] / 2, (calibrated, uncalibrated)


def _every_fourth_digit(data, out):
    """A quarter of the digits folder (449 images, every class): enough for one epoch of fine-tuning."""
    for number, name in enumerate(sorted(os.listdir(data))):
        os.makedirs(out / name)
        for file in sorted(os.listdir(os.path.join(data, name)))[number % 4::4]:
            shutil.copy(os.path.join(data, name, file), out / name / file)
    return str(out)


def test_qat_fine_tunes_and_convert_makes_the_full_integer_model(digits_model, tmp_path, capsys):
    model_path, all_digits = digits_model
    data = _every_fourth_digit(all_digits, tmp_path / "digits")
    run_dir = tmp_path / "qat"
    path, report, history = quantization_aware_training(model_path, data, str(run_dir), epochs=1,
                                                        calibration_steps=64)
    assert sorted(os.listdir(run_dir)) == ["float_model.keras", "model_int8.tflite", "qat_run.json",
                                           "qat_weights.h5"]
    assert not any(op.startswith(("FLEX", "CUSTOM")) for op in report.ops), report.ops
    assert "CONV_2D" in report.ops and len(history["loss"]) == 1
    # The ops XNNPACK has no int8 kernel for are float islands: XNNPACK runs the whole graph but the uint8 I/O.
    assert report.xnnpack.partitions == 1 and set(report.xnnpack.not_delegated) <= {"QUANTIZE"}, report.xnnpack
    assert {"RSQRT", "SOFTMAX"} <= set(report.float_ops), report.float_ops
    classifier = TFLiteClassifier(path)
    assert classifier.input["dtype"] == np.uint8 and classifier.output["dtype"] == np.uint8
    assert read_metadata(path)["precision"] == "int8-qat"
    assert read_metadata(path)["class_names"] == [str(i) for i in range(10)]

    float_top1 = evaluate(model_path, data, limit=300, progress=False)["top1"]
    int8_top1 = evaluate(path, data, limit=300, progress=False)["top1"]
    assert int8_top1 >= float_top1 - 0.03

    # The run directory is what `convert` takes. With every op in int8 (TFLite's int8 kernels where XNNPACK has
    # none, in many partitions) it is as accurate: the islands read and write the same int8 tensors.
    again = str(tmp_path / "again.tflite")
    assert cli_main(["convert", str(run_dir), "--out", again, "--precision", "int8", "--calibration-data", data,
                     "--calibration-steps", "64", "--io-type", "uint8", "--all-int8"]) == 0
    assert "XNNPACK" in capsys.readouterr().out
    assert xnnpack_delegation(again).partitions > 10
    assert abs(evaluate(again, data, limit=300, progress=False)["top1"] - int8_top1) <= 0.01

    # An existing run is not overwritten without asking.
    with pytest.raises(FileExistsError, match="exists"):
        quantization_aware_training(model_path, data, str(run_dir), epochs=1)


def test_convert_refuses_a_folder_that_is_not_a_qat_run(tmp_path):
    with pytest.raises(ConversionError, match="not a QAT run directory"):
        load_keras_model(tmp_path)


def test_mobilevit_v1_gets_fake_quantization_and_an_int8_file_xnnpack_runs_whole(tmp_path):
    # tfmot's registry has no LayerNormalization (MobileViT v1's transformer norm); without its own config there,
    # `mobilevitv2 qat` failed on every v1 model. Calibrated, the fake-quantized model follows the float one, and
    # its int8 file is one XNNPACK partition with the attention products in int8.
    import keras
    import skimage.data
    from PIL import Image

    import keras_mobilevitv2 as kmv
    from mobilevitv2_tflite.convert import fixed_size_model, inspect_tflite, tflite_content

    keras.utils.set_random_seed(0)
    model = kmv.create_model("mobilevit_xxs", input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    photos = [np.asarray(Image.fromarray(getattr(skimage.data, name)()).resize((64, 64)), np.float32)[np.newaxis]
              for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")]
    reference = np.concatenate([model.predict(x, verbose=0) for x in photos])
    quantized = quantization_aware_model(model)
    calibrate_ranges(quantized, photos)
    fake = np.concatenate([np.asarray(quantized(x, training=False)) for x in photos])
    assert np.corrcoef(fake.ravel(), reference.ravel())[0, 1] > 0.9

    for_conversion = quantization_aware_model(model, for_conversion=True)
    for_conversion.set_weights(quantized.get_weights())
    path = tmp_path / "v1_qat.tflite"
    path.write_bytes(tflite_content(fixed_size_model(for_conversion, precision="int8")[0], "int8",
                                    [[x] for x in photos]))  # (for the ops fake-quantization does not cover)
    report = inspect_tflite(path, "int8")
    assert report.xnnpack.partitions == 1, report.xnnpack
    assert report.ops["BATCH_MATMUL"] == 18 and "BATCH_MATMUL" not in report.float_ops, report.float_ops
