"""cvnets' SSD post-processing (``SingleShotMaskDetector.postprocess_detections``), in numpy and in TensorFlow.

From the raw head outputs: decode every anchor (normalised xyxy, not clipped);
softmax over all classes, background 0 included; for each class 1..C-1 the
anchors whose probability is > ``conf_threshold`` (strict), at most the
``top_k`` most probable; class-aware NMS as torchvision's ``batched_nms`` (a
box is suppressed by a kept box of its class with IoU > ``nms_iou_threshold``,
IoU computed in float32 as torchvision does); the first ``max_detections`` by
decreasing score. Equal scores keep the lower index first (class, then rank),
as a stable sort does.

Output: ``boxes`` normalised (x1, y1, x2, y2) like cvnets (``box_coder.xyxy_to_yxyx``
gives TensorFlow's order; ``to_pixels`` the original image's pixels), ``labels``
1..C-1 (0 is background), ``confidence`` the class probability. The keys are
keras-hub's (``NonMaxSuppression``), so its box utilities read them.
"""

import numpy as np
import tensorflow as tf

import keras

from .anchors import ASPECT_RATIOS, OUTPUT_STRIDES, ssd_anchors
from .box_coder import decode_to_corners

CONF_THRESHOLD = 0.01
TOP_K = 400
NMS_IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 200


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=-1, keepdims=True)


def nms(boxes, scores, iou_threshold):
    """Indices kept by greedy NMS, in decreasing score: torchvision's CPU ``nms``, float32 arithmetic."""
    boxes = boxes.astype(np.float32, copy=False)
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for position, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[position + 1:]
        width = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        height = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = width * height
        with np.errstate(invalid="ignore", divide="ignore"):
            suppressed[rest[inter / (areas[i] + areas[rest] - inter) > iou_threshold]] = True
    return np.asarray(keep, np.int64)


def postprocess_numpy(box_regressions, class_logits, anchors, conf_threshold=CONF_THRESHOLD, top_k=TOP_K,
                      nms_iou_threshold=NMS_IOU_THRESHOLD, max_detections=MAX_DETECTIONS):
    """Per image of the batch, a dict of ``boxes`` [n, 4], ``labels`` [n] int64, ``confidence`` [n].

    ``box_regressions`` [B, A, 4], ``class_logits`` [B, A, C], ``anchors`` [A, 4] centre form.
    A literal transcription of cvnets, for checking and for use outside a graph.
    """
    boxes = decode_to_corners(np.asarray(box_regressions, np.float32), np.asarray(anchors, np.float32))
    probabilities = _softmax(np.asarray(class_logits, np.float32))
    results = []
    for image_boxes, image_probabilities in zip(boxes, probabilities):
        kept_boxes, kept_scores, kept_labels = [], [], []
        for label in range(1, image_probabilities.shape[-1]):
            scores = image_probabilities[:, label]
            candidates = np.flatnonzero(scores > conf_threshold)
            if not len(candidates):
                continue
            best = np.argsort(-scores[candidates], kind="stable")[:top_k]
            # class-aware NMS: torchvision's batched_nms is per-class nms, the survivors ordered by score
            keep = nms(image_boxes[candidates[best]], scores[candidates[best]], nms_iou_threshold)
            kept_boxes.append(image_boxes[candidates[best][keep]])
            kept_scores.append(scores[candidates[best][keep]])
            kept_labels.append(np.full(len(keep), label, np.int64))
        if not kept_scores:
            results.append({"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
                            "confidence": np.zeros(0, np.float32)})
            continue
        scores = np.concatenate(kept_scores)
        order = np.argsort(-scores, kind="stable")[:max_detections]
        results.append({"boxes": np.concatenate(kept_boxes)[order], "labels": np.concatenate(kept_labels)[order],
                        "confidence": scores[order]})
    return results


def _greedy_nms(boxes, valid, iou_threshold):
    """``keep`` [..., K] of greedy NMS run independently on every group of K boxes sorted by decreasing score.

    One step per rank: box i is kept when valid and not suppressed by a kept box
    before it, then suppresses the boxes after it with IoU > threshold. Groups
    (images x classes) advance together; the loop stops after the last valid rank.
    """
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    areas = (x2 - x1) * (y2 - y1)
    size = tf.shape(valid)[-1]
    ranks = tf.range(size)
    steps = tf.reduce_max(tf.reduce_sum(tf.cast(valid, tf.int32), axis=-1))

    def step(i, suppressed):
        kept = tf.logical_and(valid[..., i], tf.logical_not(suppressed[..., i]))[..., None]
        width = tf.maximum(0.0, tf.minimum(x2[..., i:i + 1], x2) - tf.maximum(x1[..., i:i + 1], x1))
        height = tf.maximum(0.0, tf.minimum(y2[..., i:i + 1], y2) - tf.maximum(y1[..., i:i + 1], y1))
        inter = width * height
        iou = inter / (areas[..., i:i + 1] + areas - inter)
        suppress = tf.logical_and(tf.logical_and(kept, iou > iou_threshold), ranks > i)
        return i + 1, tf.logical_or(suppressed, suppress)

    _, suppressed = tf.while_loop(lambda i, _: i < steps, step, [tf.constant(0), tf.zeros_like(valid)])
    return tf.logical_and(valid, tf.logical_not(suppressed))


def postprocess(box_regressions, class_logits, anchors, conf_threshold=CONF_THRESHOLD, top_k=TOP_K,
                nms_iou_threshold=NMS_IOU_THRESHOLD, max_detections=MAX_DETECTIONS):
    """The same in TensorFlow ops, batched, with static output shapes (padded).

    ``box_regressions`` [B, A, 4], ``class_logits`` [B, A, C] (A and C static),
    ``anchors`` [A, 4] centre form. Returns ``boxes`` [B, max_detections, 4]
    float32, ``labels`` [B, max_detections] int32, ``confidence`` [B,
    max_detections] float32, ``num_detections`` [B] int32; rows from
    ``num_detections`` on are padding: boxes and confidence 0, labels -1.
    """
    box_regressions = tf.convert_to_tensor(box_regressions, tf.float32)
    class_logits = tf.convert_to_tensor(class_logits, tf.float32)
    num_anchors, num_classes = class_logits.shape[1], class_logits.shape[2]
    boxes = decode_to_corners(box_regressions, tf.convert_to_tensor(anchors, tf.float32))
    probabilities = tf.transpose(tf.nn.softmax(class_logits, axis=-1)[..., 1:], [0, 2, 1])  # [B, C - 1, A]
    per_class = min(top_k, num_anchors)
    # below-threshold scores become -1 so that top_k puts them last; top_k is stable (lower index first)
    scores, indices = tf.math.top_k(tf.where(probabilities > conf_threshold, probabilities, -1.0), per_class)
    candidates = tf.gather(boxes, indices, batch_dims=1)  # [B, C - 1, K, 4]
    keep = _greedy_nms(candidates, scores > conf_threshold, nms_iou_threshold)

    flat_scores = tf.reshape(tf.where(keep, scores, -1.0), [-1, (num_classes - 1) * per_class])
    flat_boxes = tf.reshape(candidates, [-1, (num_classes - 1) * per_class, 4])
    best = min(max_detections, (num_classes - 1) * per_class)
    top_scores, positions = tf.math.top_k(flat_scores, best)
    found = top_scores > conf_threshold
    pad = [[0, 0], [0, max_detections - best]]
    labels = tf.pad(tf.where(found, positions // per_class + 1, -1), pad, constant_values=-1)
    confidence = tf.pad(tf.where(found, top_scores, 0.0), pad)
    out_boxes = tf.where(found[..., None], tf.gather(flat_boxes, positions, batch_dims=1), 0.0)
    out_boxes = tf.pad(out_boxes, [[0, 0], [0, max_detections - best], [0, 0]])
    return {"boxes": out_boxes, "labels": tf.cast(labels, tf.int32), "confidence": confidence,
            "num_detections": tf.reduce_sum(tf.cast(found, tf.int32), axis=-1)}


@keras.saving.register_keras_serializable(package="keras_mobilevitv2")
class SSDPostprocess(keras.layers.Layer):
    """``postprocess`` as a layer for an inference model: ``{"box_regressions", "class_logits"}`` -> detections.

    The anchors are made from the input size and the anchor settings, so the
    config stays small. TensorFlow backend only.
    """

    def __init__(self, image_size, output_strides=OUTPUT_STRIDES, aspect_ratios=ASPECT_RATIOS,
                 conf_threshold=CONF_THRESHOLD, top_k=TOP_K, nms_iou_threshold=NMS_IOU_THRESHOLD,
                 max_detections=MAX_DETECTIONS, architecture=None, **kwargs):
        super().__init__(**kwargs)
        self.image_size = tuple(int(s) for s in image_size)
        self.architecture = architecture
        self.output_strides = tuple(int(s) for s in output_strides)
        self.aspect_ratios = tuple(tuple(int(r) for r in ratios) for ratios in aspect_ratios)
        self.conf_threshold = float(conf_threshold)
        self.top_k = int(top_k)
        self.nms_iou_threshold = float(nms_iou_threshold)
        self.max_detections = int(max_detections)
        self.anchors = ssd_anchors(*self.image_size, self.output_strides, self.aspect_ratios,
                                   architecture=architecture)

    def call(self, outputs):
        return postprocess(outputs["box_regressions"], outputs["class_logits"], self.anchors, self.conf_threshold,
                           self.top_k, self.nms_iou_threshold, self.max_detections)

    def compute_output_spec(self, outputs):
        batch = outputs["class_logits"].shape[0]
        detections = (batch, self.max_detections)
        return {"boxes": keras.KerasTensor((*detections, 4), "float32"),
                "labels": keras.KerasTensor(detections, "int32"),
                "confidence": keras.KerasTensor(detections, "float32"),
                "num_detections": keras.KerasTensor((batch,), "int32")}

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "output_strides": self.output_strides,
                "aspect_ratios": self.aspect_ratios, "conf_threshold": self.conf_threshold, "top_k": self.top_k,
                "nms_iou_threshold": self.nms_iou_threshold, "max_detections": self.max_detections,
                "architecture": self.architecture}


def to_pixels(boxes, height, width):
    """Normalised xyxy -> pixels of an image ``height`` x ``width``, clipped to it (cvnets' evaluation)."""
    boxes = np.asarray(boxes, np.float32)
    scale = np.asarray([width, height, width, height], np.float32)
    return np.clip(boxes * scale, 0.0, scale)
