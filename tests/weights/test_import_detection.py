"""The official SSDLite checkpoint: raw outputs, anchors and final detections as cvnets gives them."""

import os

import numpy as np
import pytest

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from keras_mobilevitv2.detection import ssd_anchors
from keras_mobilevitv2.models import inference_detector

from conftest import OFFICIAL_REFERENCE

SSDLITE = os.path.join(OFFICIAL_REFERENCE, "cvnets_ssdlite_mobilevitv2_050")


@pytest.fixture(scope="module")
def reference():
    return np.load(SSDLITE + ".npz")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ssd") / "ssdlite.keras")
    assert cli_main(["import-weights", SSDLITE + ".pt", "--model", "ssdlite_mobilevitv2_050", "--out", out]) == 0
    return keras.saving.load_model(out, safe_mode=True)


def test_raw_outputs_and_anchors_equal_the_official_ones(imported, reference):
    outputs = imported(reference["x"] * 255.0)
    for key in ("box_regressions", "class_logits"):
        assert outputs[key].shape == reference[key].shape
        assert np.abs(np.asarray(outputs[key]) - reference[key]).max() <= 1e-4
    assert np.abs(ssd_anchors(320, 320) - reference["anchors"]).max() <= 1e-6
    facts = kmv.get_preprocessing(imported)
    assert facts.input_size == (320, 320) and len(facts.class_names) == 80 and facts.class_names[-1] == "toothbrush"


def _matched(boxes, labels, scores, expected_boxes, expected_labels, expected_scores, tolerance=1e-3):
    """Whether every expected detection has its own detection of the same label, box and score (within tolerance)."""
    if len(boxes) != len(expected_boxes):
        return False
    free = np.ones(len(boxes), bool)
    for box, label, score in zip(expected_boxes, expected_labels, expected_scores):
        close = free & (labels == label) & (np.abs(scores - score) <= tolerance) \
            & (np.abs(boxes - box).max(axis=1) <= tolerance)
        if not close.any():
            return False
        free[np.flatnonzero(close)[0]] = False
    return True


@pytest.mark.parametrize("threshold, prefix", [(0.01, "det"), (0.5, "det_hi")])
def test_post_processing_of_its_own_outputs_gives_the_official_detections(imported, reference, threshold, prefix):
    detector = inference_detector(imported, score_threshold=threshold)
    found = detector(reference["x"][:1] * 255.0)
    count = int(found["num_detections"][0])
    assert count == len(reference[f"{prefix}_scores"])
    assert _matched(np.asarray(found["boxes"][0, :count]), np.asarray(found["labels"][0, :count]),
                    np.asarray(found["confidence"][0, :count]), reference[f"{prefix}_boxes"],
                    reference[f"{prefix}_labels"], reference[f"{prefix}_scores"])


def test_official_detector_survives_conversion_with_its_post_processing_inside(imported, reference, tmp_path,
                                                                                capsys):
    from mobilevitv2_tflite.convert import convert, xnnpack_delegation
    from mobilevitv2_tflite.metadata import read_metadata, read_standard_metadata_of
    from mobilevitv2_tflite.runtime import TFLiteDetector

    keras_path = str(tmp_path / "ssdlite.keras")
    imported.save(keras_path)
    # Raw outputs: the official ones.
    raw = TFLiteDetector(convert(keras_path, str(tmp_path / "raw.tflite"), outputs="raw").path)
    boxes, logits = raw.raw_outputs(reference["x"][0] * 255.0)
    assert np.abs(boxes - reference["box_regressions"][0]).max() <= 1e-4
    assert np.abs(logits - reference["class_logits"][0]).max() <= 1e-4
    # The default file holds the post-processing (the one op outside the builtins, named in the report) and
    # gives the official detections.
    path = str(tmp_path / "ssdlite.tflite")
    assert cli_main(["convert", keras_path, "--out", path, "--score-threshold", "0.5"]) == 0
    assert "custom op: TFLite_Detection_PostProcess (LiteRT's default op resolver" in capsys.readouterr().out
    # XNNPACK runs everything before that op in one piece: the levels' concatenation and the split into boxes
    # and classes included.
    delegation = xnnpack_delegation(path)
    assert delegation.partitions == 1 and delegation.not_delegated == {"TFLite_Detection_PostProcess": 1}, delegation
    facts = read_metadata(path)
    assert facts["outputs"] == "detections" and facts["postprocessing"] == {
        "score_threshold": 0.5, "iou_threshold": 0.5, "max_detections": 200, "regular_nms": True, "num_classes": 80}
    metadata = read_standard_metadata_of(path)
    assert metadata.name == b"ObjectDetector" and metadata.minParserVersion == b"1.2.0"
    found = TFLiteDetector(path).detections(reference["x"][0] * 255.0)
    assert _matched(found["boxes"], found["labels"], found["confidence"], reference["det_hi_boxes"],
                    reference["det_hi_labels"], reference["det_hi_scores"])
    with pytest.raises(ValueError, match="final detections"):
        TFLiteDetector(path).raw_outputs(reference["x"][0] * 255.0)
    # `mobilevitv2 benchmark` times it, its post-processing op included.
    assert cli_main(["benchmark", path, "--runs", "3", "--warmup", "1"]) == 0
    assert "| ssdlite.tflite | host | 1 | xnnpack |" in capsys.readouterr().out
