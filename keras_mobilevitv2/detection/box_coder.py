"""SSD box coding as cvnets does it (``cvnets/misc/box_utils.py``), for numpy arrays and TensorFlow tensors.

Formats: ``center`` is (cx, cy, w, h), ``corner`` is (x1, y1, x2, y2) = xyxy;
everything is normalised to the image (fractions of its width and height).
Every function takes numpy arrays (and computes in their dtype) or tensors.

The deltas (tx, ty, tw, th) of a box g against an anchor d:
``tx = (g_cx - d_cx) / d_w / 0.1``, ``tw = log(g_w / d_w) / 0.2`` (y, h alike).
``keras.utils.bounding_boxes.decode_deltas_to_boxes(anchors, deltas, "center_xywh",
"xyxy", "center_xywh", variance=[0.1, 0.1, 0.2, 0.2])`` computes the same decoding
(tests check it); it is not used because it also converts the anchors' format on
every call and has no numpy path.
"""

import numpy as np
import tensorflow as tf

CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2


def _math(array):
    """(concatenate, exp, log) of numpy for numpy arrays, of TensorFlow otherwise."""
    if isinstance(array, np.ndarray):
        return (lambda parts: np.concatenate(parts, axis=-1)), np.exp, np.log
    return (lambda parts: tf.concat(parts, axis=-1)), tf.exp, tf.math.log


def center_to_corner(boxes):
    """(cx, cy, w, h) -> (x1, y1, x2, y2)."""
    concat, _, _ = _math(boxes)
    return concat([boxes[..., :2] - boxes[..., 2:] * 0.5, boxes[..., :2] + boxes[..., 2:] * 0.5])


def corner_to_center(boxes):
    """(x1, y1, x2, y2) -> (cx, cy, w, h)."""
    concat, _, _ = _math(boxes)
    return concat([(boxes[..., :2] + boxes[..., 2:]) * 0.5, boxes[..., 2:] - boxes[..., :2]])


def xyxy_to_yxyx(boxes):
    """(x1, y1, x2, y2) <-> (y1, x1, y2, x2): the TensorFlow / Keras order. Its own inverse."""
    if isinstance(boxes, np.ndarray):
        return boxes[..., [1, 0, 3, 2]]
    return tf.gather(boxes, [1, 0, 3, 2], axis=-1)


def encode(boxes, anchors, center_variance=CENTER_VARIANCE, size_variance=SIZE_VARIANCE):
    """Centre-form ``boxes`` -> deltas against centre-form ``anchors`` (cvnets' ``convert_boxes_to_locations``)."""
    concat, _, log = _math(boxes)
    centers = (boxes[..., :2] - anchors[..., :2]) / anchors[..., 2:] / center_variance
    sizes = log(boxes[..., 2:] / anchors[..., 2:]) / size_variance
    return concat([centers, sizes])


def decode(deltas, anchors, center_variance=CENTER_VARIANCE, size_variance=SIZE_VARIANCE):
    """Deltas -> centre-form boxes (cvnets' ``convert_locations_to_boxes``); ``anchors`` broadcast over the batch."""
    concat, exp, _ = _math(deltas)
    sizes = exp(deltas[..., 2:] * size_variance) * anchors[..., 2:]
    centers = deltas[..., :2] * center_variance * anchors[..., 2:] + anchors[..., :2]
    return concat([centers, sizes])


def decode_to_corners(deltas, anchors, center_variance=CENTER_VARIANCE, size_variance=SIZE_VARIANCE):
    """Deltas -> normalised xyxy boxes, not clipped: what cvnets' SSD predicts (``SSDMatcher.convert_to_boxes``)."""
    return center_to_corner(decode(deltas, anchors, center_variance, size_variance))
