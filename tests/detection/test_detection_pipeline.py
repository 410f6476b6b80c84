"""The SSD training pipeline keeps boxes on their objects, is deterministic and resumable; the eval pipeline."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_mobilevitv2.data.detection import scan_coco
from keras_mobilevitv2.data.detection_pipeline import (DetectionAugmentConfig, augment_example,
                                                       make_detection_eval_dataset, make_detection_train_dataset)
from keras_mobilevitv2.detection.anchors import ssd_anchors
from keras_mobilevitv2.detection.box_coder import decode_to_corners

COLORS = np.array([(230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 30)], np.float32)  # labels 1..4
BACKGROUND = 128


def painted(rng, height, width, count):
    """A gray image with ``count`` separated rectangles, each the colour of its label; (image, boxes, labels)."""
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    boxes, labels = [], []
    while len(boxes) < count:
        w, h = rng.integers(width // 8, width // 3), rng.integers(height // 8, height // 3)
        x, y = rng.integers(0, width - w), rng.integers(0, height - h)
        box = np.array([x, y, x + w, y + h], np.float32)
        if any(box[0] < b[2] + 6 and b[0] < box[2] + 6 and box[1] < b[3] + 6 and b[1] < box[3] + 6 for b in boxes):
            continue
        label = len(boxes) % len(COLORS) + 1
        image[y:y + h, x:x + w] = COLORS[label - 1]
        boxes.append(box)
        labels.append(label)
    return image, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int32)


def assert_boxes_on_their_objects(image, boxes, labels, photometric=False):
    """Inside every box its object's colour (or one uniform colour, when colours are distorted); just outside
    its sides that lie inside the image, not."""
    height, width = image.shape[:2]
    for (x1, y1, x2, y2), label in zip(boxes * [width, height, width, height], labels):
        assert x2 - x1 > 1 and y2 - y1 > 1
        inner = image[int(np.ceil(y1)) + 2:int(y2) - 2, int(np.ceil(x1)) + 2:int(x2) - 2].reshape(-1, 3)
        if len(inner) == 0:
            continue
        reference = np.median(inner, axis=0) if photometric else COLORS[label - 1]
        assert np.abs(inner - reference).max() < 24, (label, (x1, y1, x2, y2))
        rows, columns = slice(int(y1) + 3, int(y2) - 3), slice(int(x1) + 3, int(x2) - 3)
        outside = []
        if x1 > 4:
            outside.append(image[rows, int(x1) - 3])
        if x2 < width - 4:
            outside.append(image[rows, int(np.ceil(x2)) + 2])
        if y1 > 4:
            outside.append(image[int(y1) - 3, columns])
        if y2 < height - 4:
            outside.append(image[int(np.ceil(y2)) + 2, columns])
        for strip in outside:
            if len(strip):
                assert np.abs(strip - reference).max(axis=-1).min() > 24, (label, (x1, y1, x2, y2))


@pytest.mark.parametrize("config", [DetectionAugmentConfig(photometric=0.0), DetectionAugmentConfig.preset("zoom"),
                                    DetectionAugmentConfig()], ids=["crop-flip", "zoom", "recipe"])
def test_augmentation_keeps_every_box_on_its_object(rng, config):
    image, boxes, labels = painted(rng, 240, 320, 4)
    augment = tf.function(lambda seed: augment_example(image, boxes, labels, seed, config, (128, 160)),
                          autograph=False)
    cropped = 0
    for index in range(24):
        out_image, out_boxes, out_labels = (t.numpy() for t in augment(tf.constant([3, index], tf.int64)))
        assert out_image.shape == (128, 160, 3) and out_image.dtype == np.float32
        assert 0 <= out_image.min() and out_image.max() <= 255
        assert_boxes_on_their_objects(out_image, out_boxes, out_labels, photometric=config.photometric > 0)
        cropped += len(out_labels) < len(labels)
    assert cropped > 0


def test_flip_mirrors_image_and_boxes(rng):
    image, boxes, labels = painted(rng, 60, 80, 3)
    config = DetectionAugmentConfig(ssd_crop=False, photometric=0.0, horizontal_flip=1.0)
    out_image, out_boxes, out_labels = augment_example(image, boxes, labels, tf.constant([0, 0], tf.int64), config,
                                                       (60, 80))
    np.testing.assert_array_equal(out_image.numpy(), image[:, ::-1])
    np.testing.assert_allclose(out_boxes.numpy(), (boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [80, 0, 80, 0])
                               / [80, 60, 80, 60], atol=1e-6)
    np.testing.assert_array_equal(out_labels.numpy(), labels)


def test_an_image_without_boxes_is_resized_and_kept(rng):
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    out_image, out_boxes, out_labels = augment_example(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int32),
                                                       tf.constant([0, 1], tf.int64), DetectionAugmentConfig(),
                                                       (64, 64))
    assert out_image.shape == (64, 64, 3) and out_boxes.shape == (0, 4) and out_labels.shape == (0,)


def write_painted_coco(root, rng, count=6):
    (root / "images").mkdir()
    data = {"categories": [{"id": 10 + i, "name": f"c{i}"} for i in range(4)], "images": [], "annotations": []}
    for index in range(count):
        height, width = int(rng.integers(160, 260)), int(rng.integers(160, 300))
        image, boxes, labels = painted(rng, height, width, index % 4)  # image 0: no objects
        Image.fromarray(image).save(root / "images" / f"{index}.png")
        data["images"].append({"id": 100 + index, "file_name": f"{index}.png", "width": width, "height": height})
        for box, label in zip(boxes, labels):
            data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": 100 + index,
                                        "category_id": 9 + int(label), "iscrowd": 0,
                                        "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]),
                                                 float(box[3] - box[1])]})
    (root / "annotations.json").write_text(json.dumps(data))
    return scan_coco(root / "images", root / "annotations.json")


def test_training_batches_match_boxes_to_anchors_on_their_objects(tmp_path, rng):
    source = write_painted_coco(tmp_path, rng)
    size = (96, 128)
    anchors = ssd_anchors(*size)
    dataset, steps = make_detection_train_dataset(source, size, 3, DetectionAugmentConfig(photometric=0.0), seed=5,
                                                  epochs=2)
    batches = list(dataset.as_numpy_iterator())
    assert steps == 2 and len(batches) == 4
    images, y_true = batches[0]
    assert images.shape == (3, 96, 128, 3) and images.dtype == np.float32
    assert y_true["box_regressions"].shape == (3, len(anchors), 4) and y_true["class_logits"].dtype == np.int32
    positives = 0
    for images, y_true in batches:
        for image, targets, labels in zip(images, y_true["box_regressions"], y_true["class_logits"]):
            positive = labels > 0
            positives += positive.sum()
            boxes = decode_to_corners(targets[positive], anchors[positive])  # the ground-truth box of each anchor
            assert_boxes_on_their_objects(image, np.clip(boxes, 0, 1), labels[positive])
    assert positives > 0


def test_epochs_are_a_function_of_seed_and_epoch_so_a_resumed_run_sees_the_same_data(tmp_path, rng):
    source = write_painted_coco(tmp_path, rng)
    config = DetectionAugmentConfig()

    def batches(**kwargs):
        dataset, _ = make_detection_train_dataset(source, (64, 64), 2, config, **kwargs)
        return dataset, lambda: [(images, y["class_logits"]) for images, y in dataset.as_numpy_iterator()]

    _, read_full = batches(seed=1, epochs=2)
    full, again = read_full(), read_full()
    resumed = batches(seed=1, start_epoch=1, epochs=2)[1]()
    assert len(full) == 6 and len(resumed) == 3
    for (a, la), (b, lb) in zip(full, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    for (a, la), (b, lb) in zip(full[3:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(full[0][0], full[3][0])


def test_eval_batches_keep_ids_and_original_sizes(tmp_path, rng):
    source = write_painted_coco(tmp_path, rng, count=5)
    batches = list(make_detection_eval_dataset(source, (64, 80), 2).as_numpy_iterator())
    assert [len(images) for images, _ in batches] == [2, 2, 1]
    images, info = batches[0]
    assert images.shape == (2, 64, 80, 3) and images.dtype == np.float32
    assert np.concatenate([i["image_id"] for _, i in batches]).tolist() == list(source.image_ids)
    np.testing.assert_array_equal(np.concatenate([i["original_size"] for _, i in batches]), source.sizes)
