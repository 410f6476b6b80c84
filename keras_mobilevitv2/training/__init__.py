"""Training with keras.Model.fit on tf.data: the official recipe or the small-data one, resumable and distributable."""

from .recipe import AdamW, TrainConfig, choose_recipe, learning_rate_schedule, make_optimizer
from .tasks import SegmentationCrossEntropy, get_task
from .train import RunDirError, TrainResult, initialise, load_data, make_strategy, save_inference_model, train

__all__ = [
    "AdamW", "RunDirError", "SegmentationCrossEntropy", "TrainConfig", "TrainResult", "choose_recipe", "get_task",
    "initialise", "learning_rate_schedule", "load_data", "make_optimizer", "make_strategy", "save_inference_model",
    "train",
]
