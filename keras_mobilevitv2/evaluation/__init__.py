"""Evaluation: the official protocols' metrics and the predictions they score."""

from .segmentation import (KerasSegmenter, confusion_matrix, evaluate_segmentation, predict_mask, resize_logits,
                           segmentation_scores)

__all__ = ["KerasSegmenter", "confusion_matrix", "evaluate_segmentation", "predict_mask", "resize_logits",
           "segmentation_scores"]
