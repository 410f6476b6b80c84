"""SSD anchors and feature-map sizes against cvnets' priors."""

import numpy as np
import pytest

from keras_mobilevitv2.detection.anchors import anchors_per_location, feature_map_sizes, ssd_anchors
from detection_reference import ssdlite_reference


def test_anchors_equal_cvnets_priors():
    anchors = ssd_anchors(320, 320)
    reference = ssdlite_reference()["anchors"]
    assert anchors.dtype == np.float32 and anchors.shape == (3232, 4)
    np.testing.assert_array_equal(anchors, reference)


def test_feature_map_sizes_follow_stride_two_convs_with_padding_one():
    assert feature_map_sizes(320, 320) == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    for height, width in ((300, 500), (257, 255), (64, 96), (1, 7)):
        sizes = feature_map_sizes(height, width)
        for stride, size in zip((16, 32, 64, 128, 256), sizes):
            rows, columns = height, width
            for _ in range(stride.bit_length() - 1):
                rows, columns = (rows + 2 - 3) // 2 + 1, (columns + 2 - 3) // 2 + 1  # PyTorch's conv arithmetic
            assert size == (rows, columns) == (-(-height // stride), -(-width // stride))
        assert sizes[-1] == (1, 1)
    with pytest.raises(ValueError, match="powers of two"):
        feature_map_sizes(320, 320, (16, 24))


def test_non_square_anchors_order_and_count():
    height, width = 256, 384
    anchors = ssd_anchors(height, width)
    counts = [rows * columns * n for (rows, columns), n in zip(feature_map_sizes(height, width),
                                                                anchors_per_location())]
    assert anchors.shape == (sum(counts), 4) and anchors_per_location() == [6, 6, 6, 6, 6, 4]
    first = anchors[:counts[0]].reshape(16, 24, 6, 4)  # the stride-16 level: cells row-major, then the cell's anchors
    np.testing.assert_allclose(first[2, 5, :, 0], (5 + 0.5) / 24, rtol=1e-6)
    np.testing.assert_allclose(first[2, 5, :, 1], (2 + 0.5) / 16, rtol=1e-6)
    np.testing.assert_allclose(first[0, 0, :, 2:], [[0.1, 0.1], [0.1 * 1.6072751, 0.1 * 1.6072751],
                                                   [0.1 * 2 ** 0.5, 0.1 / 2 ** 0.5], [0.1 / 2 ** 0.5, 0.1 * 2 ** 0.5],
                                                   [0.1 * 3 ** 0.5, 0.1 / 3 ** 0.5], [0.1 / 3 ** 0.5, 0.1 * 3 ** 0.5]],
                               rtol=1e-6)
    assert anchors.min() >= 0 and anchors.max() <= 1
    np.testing.assert_array_equal(anchors[-4:, :2], 0.5)  # the global level: one cell at the centre
