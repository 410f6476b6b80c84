"""SSD post-processing inside the ``.tflite`` file: LiteRT's ``TFLite_Detection_PostProcess`` op.

The one op outside TFLite's builtins that a converted file may hold: LiteRT's
default op resolver registers it (``BuiltinOpResolver``), so the standard
interpreters, MediaPipe Tasks' ObjectDetector and the LiteRT samples run it
with no code. It decodes the box regressions with the anchors (variances 0.1 /
0.2 as scales 10 / 5), runs NMS and outputs the four standard tensors:

- ``boxes`` [1, M, 4]: (ymin, xmin, ymax, xmax), normalised to the input;
- ``classes`` [1, M]: class ids 0-based over the object classes (no background);
- ``scores`` [1, M]: softmax probabilities;
- ``num_detections`` [1].

The converter emits it for a TensorFlow function marked
``experimental_implements`` with the op's name and attributes (TensorFlow's
Object Detection API does the same); the function's own body is a placeholder.
"""

import dataclasses

import numpy as np

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
OUTPUTS = ("boxes", "classes", "scores", "num_detections")


@dataclasses.dataclass(frozen=True)
class DetectionPostprocessing:
    """What the file's post-processing does (the Keras post-processing's defaults, as cvnets' ``ssd.py``).

    ``regular_nms``: NMS per class, as cvnets does (class-aware); else the op's
    fast NMS over each anchor's best class.
    """
    score_threshold: float = 0.01
    iou_threshold: float = 0.5
    max_detections: int = 200
    regular_nms: bool = True

    def __post_init__(self):
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"the score threshold must be in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"the IoU threshold must be in (0, 1], got {self.iou_threshold}")
        if not 1 <= self.max_detections <= 10000:
            raise ValueError(f"max detections must be 1 to 10000, got {self.max_detections}")

    def attributes(self, num_classes):
        """The op's attributes: cvnets' box coder and these settings."""
        from keras_mobilevitv2.detection.box_coder import CENTER_VARIANCE, SIZE_VARIANCE

        return {"max_detections": int(self.max_detections), "max_classes_per_detection": 1,
                "detections_per_class": int(self.max_detections), "use_regular_nms": bool(self.regular_nms),
                "nms_score_threshold": float(self.score_threshold), "nms_iou_threshold": float(self.iou_threshold),
                "num_classes": int(num_classes), "y_scale": 1.0 / CENTER_VARIANCE, "x_scale": 1.0 / CENTER_VARIANCE,
                "h_scale": 1.0 / SIZE_VARIANCE, "w_scale": 1.0 / SIZE_VARIANCE}

    def to_dict(self):
        return dataclasses.asdict(self)


def _implements(attributes):
    """The ``experimental_implements`` text (a NameAttrList) naming the op and its attributes."""
    def value(v):
        if isinstance(v, bool):
            return f"b: {str(v).lower()}"
        return f"i: {v}" if isinstance(v, int) else f"f: {v!r}"

    return " ".join([f'name: "{POSTPROCESS_OP}"'] + [f'attr {{ key: "{k}" value {{ {value(v)} }} }}'
                                                      for k, v in attributes.items()])


def with_postprocessing(model, anchors, settings):
    """``model`` (a batch-1 detector: box regressions, class logits) followed by the op, as a model with the
    four outputs of ``OUTPUTS``. ``anchors``: the detector's ``(cx, cy, w, h)`` anchors; ``settings``: a
    ``DetectionPostprocessing``."""
    import tensorflow as tf

    from keras_mobilevitv2.backend import get_keras, keras_module_name

    keras = get_keras(keras_module_name(model))
    num_classes = int(model.output["class_logits"].shape[-1]) - 1
    # The op takes (y, x, h, w) anchors and (ty, tx, th, tw) regressions; cvnets' are (x, y, w, h)-ordered.
    anchors_yxhw = np.asarray(anchors, np.float32)[:, [1, 0, 3, 2]]

    @tf.function(experimental_implements=_implements(settings.attributes(num_classes)))
    def postprocess(box_encodings, class_predictions, anchors):  # noqa: ARG001 - the converter replaces the body
        return tuple(tf.constant(0.0, tf.float32, name=name) for name in OUTPUTS)

    class TFLiteDetectionPostProcess(keras.layers.Layer):
        def call(self, box_regressions, class_logits):
            tx, ty, tw, th = tf.split(box_regressions, 4, axis=-1)  # split + concat: XNNPACK takes them
            encodings = tf.concat([ty, tx, th, tw], axis=-1)
            scores = tf.nn.softmax(class_logits, axis=-1)
            return dict(zip(OUTPUTS, postprocess(encodings, scores, tf.constant(anchors_yxhw))))

    outputs = TFLiteDetectionPostProcess(name="postprocess")(model.output["box_regressions"],
                                                              model.output["class_logits"])
    if keras_module_name(model) == "tf_keras":  # (a QAT model) tf_keras names outputs by the layers writing them
        from .convert import named_outputs

        return named_outputs(model, outputs)
    return keras.Model(model.input, outputs, name=model.name)
