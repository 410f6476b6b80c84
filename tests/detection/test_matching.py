"""The SSD matcher against a line-by-line numpy transcription of cvnets' ``assign_priors`` and ``SSDMatcher``."""

import numpy as np
import tensorflow as tf

from keras_mobilevitv2.detection.anchors import ssd_anchors
from keras_mobilevitv2.detection.matching import match_anchors


def cvnets_match(gt_boxes, gt_labels, anchors, iou_threshold=0.5):
    """cvnets' matcher for an image with boxes, in float32 numpy, loops and all."""
    corner = np.concatenate([anchors[:, :2] - anchors[:, 2:] * 0.5, anchors[:, :2] + anchors[:, 2:] * 0.5], -1)
    boxes0, boxes1 = gt_boxes[None], corner[:, None]

    def area(left_top, right_bottom):
        hw = np.clip(right_bottom - left_top, 0.0, None)
        return hw[..., 0] * hw[..., 1]

    overlap = area(np.maximum(boxes0[..., :2], boxes1[..., :2]), np.minimum(boxes0[..., 2:], boxes1[..., 2:]))
    ious = overlap / (area(boxes0[..., :2], boxes0[..., 2:]) + area(boxes1[..., :2], boxes1[..., 2:]) - overlap
                      + np.float32(1e-5))
    best_target_per_prior, best_target_per_prior_index = ious.max(1), ious.argmax(1)
    best_prior_per_target_index = ious.argmax(0)
    for target_index, prior_index in enumerate(best_prior_per_target_index):
        best_target_per_prior_index[prior_index] = target_index
    best_target_per_prior[best_prior_per_target_index] = 2
    labels = gt_labels[best_target_per_prior_index]
    labels[best_target_per_prior < iou_threshold] = 0
    boxes = gt_boxes[best_target_per_prior_index]
    center = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) * 0.5, boxes[:, 2:] - boxes[:, :2]], -1)
    targets = np.concatenate([(center[:, :2] - anchors[:, :2]) / anchors[:, 2:] / 0.1,
                              np.log(center[:, 2:] / anchors[:, 2:]) / 0.2], -1)
    return targets, labels


def random_boxes(rng, count):
    corner = rng.uniform(0, 0.8, (count, 2))
    size = rng.uniform(0.02, 0.6, (count, 2))
    return np.clip(np.concatenate([corner, corner + size], -1), 0, 1).astype(np.float32)


def test_matching_equals_cvnets(rng):
    anchors = ssd_anchors(320, 320)
    match = tf.function(lambda boxes, labels: match_anchors(boxes, labels, anchors), autograph=False,
                        reduce_retracing=True)
    for count in (1, 2, 5, 30):
        boxes = random_boxes(rng, count)
        labels = rng.integers(1, 81, count).astype(np.int64)
        if count == 5:  # the same box twice: both prefer one anchor, the later one takes it (cvnets' loop)
            boxes[3] = boxes[1]
        targets, anchor_labels = match(boxes, labels)
        expected_targets, expected_labels = cvnets_match(boxes, labels, anchors)
        np.testing.assert_array_equal(anchor_labels.numpy(), expected_labels)
        np.testing.assert_allclose(targets.numpy(), expected_targets, rtol=1e-5, atol=1e-5)
        assert (anchor_labels.numpy() > 0).sum() >= len(np.unique(boxes, axis=0))  # every box has an anchor


def test_an_image_without_boxes_is_all_background_in_a_tf_data_map():
    anchors = ssd_anchors(320, 320)
    images = tf.data.Dataset.from_tensor_slices(tf.ragged.constant(
        [[[0.1, 0.1, 0.5, 0.6]], np.zeros((0, 4))], ragged_rank=1, inner_shape=(4,), dtype=tf.float32))
    dataset = images.map(lambda boxes: match_anchors(boxes, tf.ones(tf.shape(boxes)[:1], tf.int32), anchors))
    (targets, labels), (empty_targets, empty_labels) = list(dataset.as_numpy_iterator())
    assert labels.shape == (3232,) and labels.dtype == np.int32 and (labels == 1).sum() > 0
    np.testing.assert_array_equal(empty_labels, 0)
    np.testing.assert_array_equal(empty_targets, 0)
    assert np.isfinite(targets).all()
