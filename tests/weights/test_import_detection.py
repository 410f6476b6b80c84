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
