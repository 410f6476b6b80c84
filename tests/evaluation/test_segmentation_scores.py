"""Segmentation scores and cvnets' evaluation resize, against hand-worked examples."""

import numpy as np
import pytest

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.evaluation import KerasSegmenter, confusion_matrix, predict_mask, segmentation_scores


def test_scores_of_a_hand_worked_example():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 0, 3]])
    confusion = confusion_matrix(truth, predicted, 4)
    assert confusion.sum() == 7  # the ignored pixel is not counted
    scores = segmentation_scores(confusion, ["bg", "a", "b", "c"])
    # bg: TP 2, union 4 (2 + FN 1 + FP 1); a: TP 2, union 3; b: TP 1, union 2; c occurs nowhere.
    assert scores["per_class_iou"] == pytest.approx({"bg": 0.5, "a": 2 / 3, "b": 0.5, "c": None})
    assert scores["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)


@pytest.mark.parametrize("size, expected", [((300, 200), (192, 128)), ((100, 250), (128, 320)),
                                            ((128, 128), (128, 128))])
def test_images_are_resized_as_cvnets_evaluates(size, expected):
    """Short side to the model's size (the long one truncated), then both floored to the output stride."""
    model = kmv.create_model("deeplabv3_mobilevitv2_050", classes=3, input_shape=(128, 128, 3))
    segmenter = KerasSegmenter.load(model)
    image = np.random.default_rng(0).integers(0, 256, (*size, 3)).astype(np.uint8)
    assert segmenter.prepare(image).shape[:2] == expected
    assert predict_mask(segmenter, image).shape == size  # the mask is at the image's own size
