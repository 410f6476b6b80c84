"""cvnets' SSD matcher (``cvnets/matcher_det/ssd_matcher.py``, ``assign_priors``) as a TensorFlow function for tf.data.

Per image: every anchor takes the ground-truth box it overlaps most; the
anchor each box overlaps most is forced to that box (IoU counted as 2, a later
box winning an anchor two boxes share, as cvnets' loop does); anchors under
``iou_threshold`` (0.5 in the COCO config) become background. IoU is cvnets'
(1e-5 added to the union). The matched boxes are encoded against their anchors.
"""

import tensorflow as tf

from .box_coder import CENTER_VARIANCE, SIZE_VARIANCE, center_to_corner, corner_to_center, encode

IOU_THRESHOLD = 0.5
BACKGROUND = 0


def box_iou(boxes, others, eps=1e-5):
    """IoU of xyxy boxes, broadcast, with cvnets' ``eps`` added to the union."""
    corner_min = tf.maximum(boxes[..., :2], others[..., :2])
    corner_max = tf.minimum(boxes[..., 2:], others[..., 2:])
    overlap = tf.reduce_prod(tf.maximum(corner_max - corner_min, 0.0), axis=-1)
    area = tf.reduce_prod(tf.maximum(boxes[..., 2:] - boxes[..., :2], 0.0), axis=-1)
    other_area = tf.reduce_prod(tf.maximum(others[..., 2:] - others[..., :2], 0.0), axis=-1)
    return overlap / (area + other_area - overlap + eps)


def match_anchors(boxes, labels, anchors, iou_threshold=IOU_THRESHOLD, center_variance=CENTER_VARIANCE,
                  size_variance=SIZE_VARIANCE):
    """One image's boxes [N, 4] (normalised xyxy) and labels [N] -> box targets [A, 4] float32, labels [A] int32.

    ``anchors`` [A, 4] centre form. An image without boxes gives all-background
    labels and zero targets (cvnets' targets are then -inf and unused).
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    num_anchors = anchors.shape[0]
    count = tf.shape(boxes)[0]

    def matched():
        iou = box_iou(boxes[None], center_to_corner(anchors)[:, None])  # [A, N], gt first as cvnets
        best_iou = tf.reduce_max(iou, axis=1)
        best_box = tf.argmax(iou, axis=1, output_type=tf.int32)  # ties: the first, as torch.max
        best_anchor = tf.argmax(iou, axis=0, output_type=tf.int32)
        # cvnets assigns box after box, so a later box wins an anchor that two boxes prefer
        forced = tf.math.unsorted_segment_max(tf.range(count), best_anchor, num_segments=num_anchors)
        is_forced = forced >= 0  # segments no box chose hold the smallest int32
        best_box = tf.where(is_forced, forced, best_box)
        best_iou = tf.where(is_forced, 2.0, best_iou)
        anchor_labels = tf.where(best_iou < iou_threshold, BACKGROUND, tf.gather(labels, best_box))
        targets = encode(corner_to_center(tf.gather(boxes, best_box)), anchors, center_variance, size_variance)
        return targets, anchor_labels

    def background():
        return tf.zeros([num_anchors, 4], tf.float32), tf.fill([num_anchors], BACKGROUND)

    targets, anchor_labels = tf.cond(count > 0, matched, background)
    targets.set_shape([num_anchors, 4])
    anchor_labels.set_shape([num_anchors])
    return targets, anchor_labels
