"""Box coding against cvnets' decoded boxes, Keras' decoder and its own inverse."""

import numpy as np
import tensorflow as tf

import keras
from keras_mobilevitv2.detection.anchors import ssd_anchors
from keras_mobilevitv2.detection.box_coder import (center_to_corner, corner_to_center, decode, decode_to_corners,
                                                   encode, xyxy_to_yxyx)
from detection_reference import ssdlite_reference


def test_decoding_equals_cvnets_in_numpy_and_tensorflow():
    reference = ssdlite_reference()
    anchors = ssd_anchors(320, 320)
    numpy_boxes = decode_to_corners(reference["box_regressions"], anchors)
    tf_boxes = decode_to_corners(tf.constant(reference["box_regressions"]), tf.constant(anchors)).numpy()
    assert numpy_boxes.dtype == np.float32
    np.testing.assert_allclose(numpy_boxes, reference["decoded_boxes"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(tf_boxes, reference["decoded_boxes"], rtol=0, atol=1e-5)


def test_keras_decoder_computes_the_same():
    reference = ssdlite_reference()
    anchors = ssd_anchors(320, 320)
    keras_boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors, reference["box_regressions"], anchor_format="center_xywh", box_format="xyxy",
        encoded_format="center_xywh", variance=[0.1, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_boxes), decode_to_corners(reference["box_regressions"],
                                                                                          anchors), atol=1e-6)


def test_encode_inverts_decode_and_forms_convert_both_ways(rng):
    anchors = ssd_anchors(320, 320)
    deltas = rng.normal(0, 1, (2, len(anchors), 4)).astype(np.float32)
    boxes = decode(deltas, anchors)
    np.testing.assert_allclose(encode(boxes, anchors), deltas, atol=2e-4)
    np.testing.assert_allclose(encode(tf.constant(boxes), tf.constant(anchors)).numpy(), deltas, atol=2e-4)
    corners = center_to_corner(boxes)
    np.testing.assert_allclose(corner_to_center(corners), boxes, atol=1e-6)
    np.testing.assert_allclose(center_to_corner(tf.constant(boxes)).numpy(), corners)
    np.testing.assert_array_equal(xyxy_to_yxyx(corners)[..., [1, 0, 3, 2]], corners)
    np.testing.assert_array_equal(xyxy_to_yxyx(tf.constant(corners)).numpy(), xyxy_to_yxyx(corners))
