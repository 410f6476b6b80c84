"""Segmentation evaluation as cvnets does it (``engine/eval_segmentation.py``), and the masks it predicts.

Protocol: the image's short side is resized to the model's size (aspect
kept; a fixed-size ``.tflite`` takes its own size), the logits are resized to
the image's original size (bilinear, ``align_corners=True``), the argmax is the
mask, and a confusion matrix against the original-size ground truth counts
every pixel whose label is a class (the ignore label and anything else are
left out). IoU of a class = TP / (TP + FP + FN); mIoU averages the classes
that occur in the ground truth or the prediction (cvnets averages all classes,
the same on any set where every class occurs).
"""

import dataclasses
import os

import numpy as np

from ..progress import ProgressLine


def confusion_matrix(target, predicted, num_classes):
    """``[classes, classes]`` int64 counts, rows the ground truth, of the pixels whose label is a class."""
    target = np.asarray(target, np.int64).ravel()
    predicted = np.asarray(predicted, np.int64).ravel()
    valid = (target >= 0) & (target < num_classes)
    counts = np.bincount(num_classes * target[valid] + predicted[valid], minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(confusion, class_names=None):
    """mIoU, pixel accuracy, mean class accuracy and per-class IoU (None where a class never occurs)."""
    confusion = np.asarray(confusion, np.float64)
    true_positives = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - true_positives
    present = union > 0
    iou = np.where(present, true_positives / np.maximum(union, 1), np.nan)
    rows = confusion.sum(1)
    class_accuracy = np.where(rows > 0, true_positives / np.maximum(rows, 1), np.nan)
    names = class_names or [str(i) for i in range(len(confusion))]
    return {
        "miou": float(np.nanmean(iou)) if present.any() else 0.0,
        "pixel_accuracy": float(true_positives.sum() / max(confusion.sum(), 1)),
        "mean_class_accuracy": float(np.nanmean(class_accuracy)) if (rows > 0).any() else 0.0,
        "per_class_iou": {name: None if np.isnan(value) else float(value) for name, value in zip(names, iou)},
        "pixels": int(confusion.sum()),
    }


def resize_logits(logits, size):
    """``[h, w, classes]`` logits resized to ``size`` (height, width), bilinear with ``align_corners=True``."""
    import tensorflow as tf

    logits = np.asarray(logits, np.float32)
    if tuple(logits.shape[:2]) == tuple(size):
        return logits
    resized = tf.raw_ops.ResizeBilinear(images=logits[np.newaxis], size=list(size), align_corners=True,
                                        half_pixel_centers=False)
    return resized.numpy()[0]


def predict_mask(segmenter, image):
    """The class of every pixel of ``image`` (uint8 RGB [H, W, 3]) as int32 [H, W], at the image's size: the
    argmax of the logits resized to it, or a file's own category mask resized to it (nearest)."""
    if getattr(segmenter, "outputs_mask", False):
        mask = segmenter.category_mask(image)
        rows = np.minimum((np.arange(image.shape[0]) + 0.5) * mask.shape[0] / image.shape[0], mask.shape[0] - 1)
        columns = np.minimum((np.arange(image.shape[1]) + 0.5) * mask.shape[1] / image.shape[1], mask.shape[1] - 1)
        return mask[rows.astype(int)[:, np.newaxis], columns.astype(int)[np.newaxis, :]]
    logits = segmenter.logits(image)
    return np.argmax(resize_logits(logits, image.shape[:2]), axis=-1).astype(np.int32)


def load_model_of_task(path_or_model, task, noun):
    """``(model, facts)`` of a ``.keras`` file (loaded in safe mode) or model of this package holding a ``task``
    model; anything else is a one-line error ("... is a classification model, not <noun>")."""
    import keras

    from ..preprocessing import get_preprocessing

    model = path_or_model
    if isinstance(path_or_model, (str, os.PathLike)):
        model = keras.saving.load_model(os.fspath(path_or_model), safe_mode=True, compile=False)
    facts = get_preprocessing(model)
    if facts.task != task:
        raise ValueError(f"{getattr(model, 'name', model)} is a {facts.task} model, not {noun}")
    return model, facts


@dataclasses.dataclass
class KerasSegmenter:
    """A ``.keras`` segmentation model of this package, run as cvnets evaluates.

    ``logits(image)``: the head's logits (before the model's own upsampling) for
    the image with its short side resized to the model's size and both sides
    floored to a multiple of the output stride; ``predict_mask`` resizes them to
    the original size in one step, as cvnets' ``orig_size`` does.
    """

    model: object
    facts: object
    output_stride: int

    def __post_init__(self):
        from ..backend import inference_function

        self.run = inference_function(self.model)

    @classmethod
    def load(cls, path_or_model):
        import keras

        from ..models import rebuild_model

        model, facts = load_model_of_task(path_or_model, "segmentation", "a segmentation model")
        flexible = rebuild_model(model, input_shape=(None, None, 3), aux_head=False)
        head = keras.Model(flexible.input, flexible.get_layer("seg_classifier").output)
        return cls(head, facts, int(facts.head["output_stride"]))

    @property
    def class_names(self):
        return self.facts.class_names

    def prepare(self, image):
        """The image resized as the model is evaluated: float32 [h, w, 3] in [0, 255]."""
        import tensorflow as tf

        from ..data import resize_image

        height, width = image.shape[:2]
        short = min(self.facts.input_size)
        if width < height:  # cvnets' Resize(int): the short side to ``short``, the long one truncated
            size = [int(short * height / width), short]
        else:
            size = [short, int(short * width / height)]
        resized = image if size == [height, width] else resize_image(image, size, self.facts.interpolation)
        floored = [max(self.output_stride, s // self.output_stride * self.output_stride) for s in size]
        if floored != size:  # cvnets resizes to a multiple of the output stride, align_corners=True
            resized = tf.raw_ops.ResizeBilinear(images=resized[tf.newaxis], size=floored, align_corners=True,
                                                half_pixel_centers=False)[0]
        return np.asarray(resized, np.float32)

    def logits(self, image):
        x = self.prepare(image)[np.newaxis] * (self.facts.input_max / 255.0)
        return np.asarray(self.run(x), np.float32)[0]


def evaluate_segmentation(segmenter, data, class_names=None, limit=None, progress=True):
    """cvnets' evaluation of ``segmenter`` (``logits(image)``) on a ``SegmentationSet``: a dict of scores.

    ``limit``: that many pairs spread evenly over the set.
    """
    from ..data.segmentation import load_segmentation_pair

    class_names = list(class_names or data.class_names)
    if limit is not None and limit < len(data):
        data = data.subset(np.unique(np.linspace(0, len(data) - 1, limit).round().astype(int)))
    confusion = np.zeros((len(class_names), len(class_names)), np.int64)
    shown = ProgressLine(len(data), progress)
    for index in range(len(data)):
        image, mask = load_segmentation_pair(data, index)
        confusion += confusion_matrix(mask, predict_mask(segmenter, image), len(class_names))
        if progress:
            miou = segmentation_scores(confusion)["miou"]
            shown.update(index + 1, f"evaluating {index + 1}/{len(data)}: mIoU {miou:.2%}")
    shown.close()
    return dict(segmentation_scores(confusion, class_names), images=len(data))
