"""Segmentation models through `mobilevitv2 convert`: the official outputs survive, builtin ops only."""

import json
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
    assert cli_main(["convert", keras_file, "--out", tflite_file, "--outputs", "logits"]) == 0
    runner = TFLiteClassifier(tflite_file)
    for image, expected in zip(reference["x"] * 255.0, reference["logits"]):
        assert np.abs(runner.scores(image) - expected).max() <= 1e-4  # full resolution, the aux head left out
    report = inspect_tflite(tflite_file)
    assert report.output_details["shape"] == [1, 256, 256, 21]
    assert not any(op.startswith(("FlexOp", "Custom")) or op == "CUSTOM" for op in report.ops)
    assert report.ops["CONV_2D"] >= 1 and "SPACE_TO_BATCH_ND" not in report.ops  # atrous convolutions in one op
    facts = read_metadata(tflite_file)
    assert facts["task"] == "segmentation" and facts["head"]["output_stride"] == 16


def test_the_three_outputs_of_a_segmentation_file(tmp_path):
    """Logits at the head's resolution (default), at the input size, or the category mask: the same answer."""
    from PIL import Image

    import keras_mobilevitv2 as kmv
    from keras_mobilevitv2.evaluation import predict_mask, resize_logits
    from mobilevitv2_tflite.runtime import TFLiteSegmenter

    keras_file = str(tmp_path / "pspnet.keras")
    kmv.create_model("pspnet_mobilevitv2_050", input_shape=(128, 128, 3), classes=5).save(keras_file)
    files = {}
    for outputs in ("logits", "head-logits", "mask"):
        files[outputs] = str(tmp_path / f"{outputs}.tflite")
        assert cli_main(["convert", keras_file, "--out", files[outputs], "--outputs", outputs]) == 0
        assert read_metadata(files[outputs])["outputs"] == outputs
    assert inspect_tflite(files["head-logits"]).output_details["shape"] == [1, 8, 8, 5]  # output stride 16
    assert inspect_tflite(files["mask"]).output_details["shape"] == [1, 128, 128]
    image = np.asarray(Image.new("RGB", (128, 128), (40, 160, 90)), np.float32)
    image[20:90, 30:110] = np.random.default_rng(0).uniform(0, 255, (70, 80, 3))
    logits = TFLiteSegmenter(files["logits"]).logits(image)
    head = TFLiteSegmenter(files["head-logits"]).logits(image)
    assert np.abs(resize_logits(head, (128, 128)) - logits).max() <= 1e-4  # the model's own upsampling
    mask = TFLiteSegmenter(files["mask"])
    np.testing.assert_array_equal(mask.category_mask(image), np.argmax(logits, axis=-1))
    photo = np.asarray(Image.fromarray(image.astype(np.uint8)).resize((200, 150)))
    assert np.mean(predict_mask(mask, photo) == predict_mask(TFLiteSegmenter(files["logits"]), photo)) >= 0.95
    # `mobilevitv2 benchmark` times segmentation files as classification ones.
    assert cli_main(["benchmark", files["head-logits"], files["mask"], "--runs", "3", "--warmup", "1",
                     "--json", str(tmp_path / "timed.json")]) == 0
    timed = json.load(open(tmp_path / "timed.json"))
    assert [r["status"] for r in timed] == ["ok", "ok"] and all(r["median_ms"] > 0 for r in timed)
