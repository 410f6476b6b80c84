"""Detection evaluation as cvnets does it (``engine/eval_detection.py``), and the detections it scores.

Protocol: every image resized to the model's input size (aspect not kept,
bicubic), the official post-processing (score threshold 0.01, 400 per class,
class-aware NMS at IoU 0.5, 200 per image), boxes scaled back to the image's
own pixels and clipped, COCO AP with pycocotools over every image of the set.
"""

import dataclasses

import numpy as np

from ..detection import postprocess_numpy, ssd_anchors, to_pixels
from ..progress import ProgressLine


@dataclasses.dataclass
class KerasDetector:
    """A ``.keras`` detector of this package: ``raw_outputs(image)`` are its box regressions and class logits for
    the image resized to its input size; ``detect`` post-processes them into boxes on the image."""

    model: object
    facts: object
    input_size: tuple

    def __post_init__(self):
        from ..backend import inference_function

        self.run = inference_function(self.model)

    @classmethod
    def load(cls, path_or_model):
        from ..models import rebuild_model
        from .segmentation import load_model_of_task

        model, facts = load_model_of_task(path_or_model, "detection", "a detector")
        size = tuple(model.input_shape[1:3])
        if None in size:
            size = tuple(facts.input_size)
            model = rebuild_model(model, input_shape=(*size, 3))
        return cls(model, facts, size)

    @property
    def class_names(self):
        return self.facts.class_names

    @property
    def architecture(self):
        return self.facts.architecture

    def raw_outputs(self, image):
        """``(box_regressions [A, 4], class_logits [A, classes + 1])`` for one uint8 RGB image of any size."""
        x = prepare_detection_image(image, self.input_size, self.facts.interpolation)[np.newaxis]
        outputs = self.run(x * (self.facts.input_max / 255.0))
        return np.asarray(outputs["box_regressions"])[0], np.asarray(outputs["class_logits"])[0]


def prepare_detection_image(image, size, interpolation="bicubic"):
    """An image resized to ``size`` whatever its aspect, as cvnets evaluates: float32 [h, w, 3] in [0, 255]."""
    from ..data import resize_image

    if tuple(image.shape[:2]) == tuple(size):
        return np.asarray(image, np.float32)
    return np.asarray(resize_image(image, list(size), interpolation), np.float32)


def detect(detector, image, score_threshold=0.01, iou_threshold=0.5, max_detections=200, top_k=400):
    """The detections of one image: ``{"boxes": [n, 4] pixels x1 y1 x2 y2 clipped to the image, "labels": [n]
    class ids 1..classes, "scores": [n]}``, best first. A ``.tflite`` file with the post-processing inside
    runs its own (its thresholds set at conversion); ``score_threshold`` and ``max_detections`` still filter."""
    if getattr(detector, "postprocessed", False):  # a .tflite file with the post-processing inside
        found = detector.detections(image)
        keep = np.flatnonzero(found["confidence"] >= score_threshold)[:max_detections]
        found = {key: value[keep] for key, value in found.items()}
    else:
        boxes, logits = detector.raw_outputs(image)
        anchors = ssd_anchors(*detector.input_size, architecture=detector.architecture)
        found = postprocess_numpy(boxes[np.newaxis], logits[np.newaxis], anchors, score_threshold, top_k,
                                  iou_threshold, max_detections)[0]
    height, width = image.shape[:2]
    return {"boxes": to_pixels(found["boxes"], height, width), "labels": np.asarray(found["labels"], np.int64),
            "scores": np.asarray(found["confidence"], np.float32)}


def evaluate_detection(detector, source, limit=None, progress=True):
    """cvnets' COCO evaluation of ``detector`` on a ``DetectionSource``: AP, AP50, AP75, AP small / medium /
    large and the ARs, as a dict."""
    import tensorflow as tf

    from ..data.pipeline import decode_file
    from ..detection import coco_evaluate

    if limit is not None and limit < len(source):
        source = source.subset(np.unique(np.linspace(0, len(source) - 1, limit).round().astype(int)))
    predictions = []
    shown = ProgressLine(len(source), progress)
    for index in range(len(source)):
        image = decode_file(tf.constant(source.paths[index]), tf.constant(source.native[index])).numpy()
        predictions.append({"image_id": int(source.image_ids[index]), **detect(detector, image)})
        shown.update(index + 1, f"detecting {index + 1}/{len(source)}")
    shown.close()
    scores = coco_evaluate(predictions, source.to_coco(), source.category_ids)
    return dict(scores, images=len(source))
