"""Evaluation: the official protocols' metrics and the predictions they score."""

from .detection import KerasDetector, detect, evaluate_detection, prepare_detection_image
from .segmentation import (KerasSegmenter, confusion_matrix, evaluate_segmentation, predict_mask, resize_logits,
                           segmentation_scores)

__all__ = ["KerasDetector", "KerasSegmenter", "confusion_matrix", "detect", "evaluate_detection",
           "evaluate_segmentation", "predict_mask", "prepare_detection_image", "resize_logits", "segmentation_scores"]
