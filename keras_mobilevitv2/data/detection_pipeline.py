"""tf.data pipelines for SSD training and evaluation from a ``DetectionSource``.

Training follows cvnets' SSD recipe (``coco_ssd.py``): SSD random crop,
photometric distortion, horizontal flip, resize to the input size (bicubic in
the COCO config), boxes normalised, then every image's boxes matched to the
anchors in the pipeline (``detection.matching``). cvnets has no zoom-out
("expand"); the original SSD's is here as an option, off by default.

Keras' box-aware preprocessing layers are not used: none does SSD's
IoU-constrained crop that keeps the boxes whose centre it holds, flips and
resizes of normalised boxes are one line each, and the layers draw from a
random state of their own where this pipeline needs each image's randomness to
be a pure function of (seed, epoch, image): epoch ``e`` is the same whether or
not the run was interrupted before it, as in ``pipeline.py``.

Images come out float32 in [0, 255], RGB, [B, H, W, 3]; ``y_true`` is the
multibox loss's dict (``detection.loss``).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from ..detection.anchors import ssd_anchors
from ..detection.matching import IOU_THRESHOLD, match_anchors
from .augment import resize_image
from .pipeline import decode_file, steps_per_epoch

AUTOTUNE = tf.data.AUTOTUNE
ZOOM_OUT_FILL = (123.7, 116.3, 103.5)  # the ImageNet mean colour SSD's zoom-out fills with


@dataclasses.dataclass(frozen=True)
class DetectionAugmentConfig:
    """Each augmentation of cvnets' SSD recipe (its defaults), switchable; ``preset`` gives the named sets."""

    ssd_crop: bool = True
    crop_min_ious: tuple = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)  # one drawn per round; 0 keeps the whole image
    crop_trials: int = 40
    crop_aspect_ratio: tuple = (0.5, 2.0)  # height / width of the crop
    crop_min_pixels: int = 100  # crops narrower or lower than this are refused
    photometric: float = 0.5  # probability of each distortion; 0 turns them off
    brightness: tuple = (0.875, 1.125)
    contrast: tuple = (0.5, 1.5)
    saturation: tuple = (0.5, 1.5)
    hue: float = 0.05  # fraction of the hue circle, either way
    horizontal_flip: float = 0.5  # probability
    zoom_out: float = 0.0  # probability; SSD's expand, not in cvnets' recipe
    zoom_out_max: float = 4.0

    @classmethod
    def preset(cls, name):
        """``recipe``: cvnets' SSD augmentation. ``zoom``: the recipe plus SSD's zoom-out (half the images,
        up to 4x), for small objects. ``light``: photometric distortion only, for short runs on small or
        orientation-sensitive data (the digits sample). ``none``: resize only."""
        if name == "recipe":
            return cls()
        if name == "zoom":
            return cls(zoom_out=0.5)
        if name == "light":
            return cls(ssd_crop=False, horizontal_flip=0.0)
        if name == "none":
            return cls(ssd_crop=False, photometric=0.0, horizontal_flip=0.0)
        raise ValueError(f"unknown augmentation preset {name!r}: recipe, zoom, light or none")


def _jaccard(boxes, rects):
    """IoU [T, N] of crop rectangles [T, 4] with boxes [N, 4], pixels, as cvnets' ``jaccard_numpy``."""
    corner_min = tf.maximum(boxes[None, :, :2], rects[:, None, :2])
    corner_max = tf.minimum(boxes[None, :, 2:], rects[:, None, 2:])
    inter = tf.reduce_prod(tf.maximum(corner_max - corner_min, 0.0), axis=-1)
    box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    rect_area = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    return inter / (box_area[None] + rect_area[:, None] - inter)


def ssd_crop(image, boxes, labels, seed, config):
    """cvnets' ``SSDCroping``: rounds of (a minimum IoU, up to ``crop_trials`` random crops).

    A round whose minimum is 0 keeps the image; otherwise its first crop of
    30-100% of each side, within the aspect limits and ``crop_min_pixels``, that
    overlaps some box by at least the minimum and holds a box's centre is taken,
    keeping the boxes whose centres it holds, clipped to it; a round without
    such a crop draws again. An image without boxes is kept. Boxes in pixels.
    """
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    modes = tf.constant(config.crop_min_ious, tf.float32)
    low, high = config.crop_aspect_ratio
    centers = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    whole = tf.stack([0.0, 0.0, width, height])
    everything = tf.ones(tf.shape(labels), tf.bool)

    def draw(index, done, rect, keep):
        round_seed = tf.random.experimental.stateless_fold_in(seed, index)
        min_iou = tf.gather(modes, tf.random.stateless_uniform([], round_seed, maxval=len(config.crop_min_ious),
                                                               dtype=tf.int32))
        # random.uniform(a, b) is a + (b - a) * u; int() of a positive number is its floor
        u = tf.random.stateless_uniform([config.crop_trials, 4],
                                        tf.random.experimental.stateless_fold_in(round_seed, 1))
        crop_width = tf.floor(0.3 * width + u[:, 0] * (0.7 * width))
        crop_height = tf.floor(0.3 * height + u[:, 1] * (0.7 * height))
        left = tf.floor(u[:, 2] * (width - crop_width))
        top = tf.floor(u[:, 3] * (height - crop_height))
        rects = tf.stack([left, top, left + crop_width, top + crop_height], axis=-1)
        holds = ((rects[:, None, 0] < centers[None, :, 0]) & (rects[:, None, 1] < centers[None, :, 1])
                 & (rects[:, None, 2] > centers[None, :, 0]) & (rects[:, None, 3] > centers[None, :, 1]))
        aspect = crop_height / crop_width
        valid = ((aspect >= low) & (aspect <= high) & (tf.reduce_max(_jaccard(boxes, rects), axis=1) >= min_iou)
                 & tf.reduce_any(holds, axis=1) & (crop_width >= config.crop_min_pixels)
                 & (crop_height >= config.crop_min_pixels))
        first = tf.argmax(tf.cast(valid, tf.int32), output_type=tf.int32)
        keep_whole = tf.equal(min_iou, 0.0)
        found = tf.reduce_any(valid) & tf.logical_not(keep_whole)
        rect = tf.where(found, rects[first], rect)
        keep = tf.where(found, holds[first], keep)
        return index + 1, keep_whole | found, rect, keep

    has_boxes = tf.size(labels) > 0
    _, _, rect, keep = tf.while_loop(
        lambda index, done, rect, keep: tf.logical_not(done) & has_boxes, draw,
        [tf.constant(0), tf.constant(False), whole, everything], maximum_iterations=1000)
    corner = tf.cast(rect[:2], tf.int32)
    size = tf.cast(rect[2:] - rect[:2], tf.int32)
    image = tf.slice(image, [corner[1], corner[0], 0], [size[1], size[0], 3])
    kept = tf.boolean_mask(boxes, keep)
    kept = tf.concat([tf.maximum(kept[:, :2], rect[:2]), tf.minimum(kept[:, 2:], rect[2:])], axis=-1)
    return image, kept - tf.tile(rect[:2], [2]), tf.boolean_mask(labels, keep)


def zoom_out(image, boxes, seed, config):
    """SSD's expand: the image placed at random on a canvas up to ``zoom_out_max`` times its size."""
    u = tf.random.stateless_uniform([4], seed)

    def expand():
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        canvas = tf.floor(shape * (1.0 + u[1] * (config.zoom_out_max - 1.0)))
        top = tf.floor(u[2] * (canvas[0] - shape[0]))
        left = tf.floor(u[3] * (canvas[1] - shape[1]))
        pad = tf.cast(tf.stack([[top, canvas[0] - shape[0] - top], [left, canvas[1] - shape[1] - left]]), tf.int32)
        fill = tf.constant(ZOOM_OUT_FILL, tf.float32)
        return tf.pad(image - fill, tf.concat([pad, [[0, 0]]], axis=0)) + fill, boxes + tf.stack([left, top] * 2)

    return tf.cond(u[0] < config.zoom_out, expand, lambda: (image, boxes))


def _gray(image):
    """Pillow's RGB -> L: 0.299 R + 0.587 G + 0.114 B."""
    return tf.reduce_sum(image * [0.299, 0.587, 0.114], axis=-1, keepdims=True)


def photometric_distort(image, seed, config):
    """cvnets' ``PhotometricDistort`` (torchvision's ColorJitter on Pillow images), each step with probability
    ``photometric``: brightness, contrast (before or after the next two), saturation, hue, channel order.

    Every step rounds to whole values in [0, 255], as Pillow's 8-bit images do.
    """
    p = config.photometric
    r = tf.random.stateless_uniform([7], seed)
    factors = tf.random.stateless_uniform([4], tf.random.experimental.stateless_fold_in(seed, 1))

    def between(bounds, u):
        return bounds[0] + u * (bounds[1] - bounds[0])

    def settle(x):
        return tf.clip_by_value(tf.round(x), 0.0, 255.0)

    def maybe(condition, step):
        return lambda x: tf.cond(condition, lambda: step(x), lambda: x)

    def contrast(x):
        mean = tf.floor(tf.reduce_mean(_gray(x)) + 0.5)
        return settle(mean + between(config.contrast, factors[1]) * (x - mean))

    def saturation(x):
        gray = tf.round(_gray(x))
        return settle(gray + between(config.saturation, factors[2]) * (x - gray))

    def hue(x):
        shift = (2.0 * factors[3] - 1.0) * config.hue
        return settle(tf.image.adjust_hue(x / 255.0, shift) * 255.0)

    def permute(x):
        order = tf.argsort(tf.random.stateless_uniform([3], tf.random.experimental.stateless_fold_in(seed, 2)))
        return tf.gather(x, order, axis=-1)

    contrast_first = r[1] < p
    steps = [maybe(r[0] < p, lambda x: settle(x * between(config.brightness, factors[0]))),
             maybe(contrast_first & (r[2] < p), contrast),
             maybe(r[3] < p, saturation),
             maybe(r[4] < p, hue),
             maybe(tf.logical_not(contrast_first) & (r[5] < p), contrast),
             maybe(r[6] < p, permute)]
    for step in steps:
        image = step(image)
    return image


def augment_example(image, boxes, labels, seed, config, size, interpolation="bicubic"):
    """One training image: uint8 [h, w, 3], pixel boxes [n, 4] xyxy and labels [n] -> float32 image ``size``,
    normalised boxes and their labels, in cvnets' order: (zoom-out), crop, photometric, flip, resize."""
    image = tf.cast(image, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    labels = tf.cast(labels, tf.int32)
    fold = tf.random.experimental.stateless_fold_in
    if config.zoom_out > 0:
        image, boxes = zoom_out(image, boxes, fold(seed, 1), config)
    if config.ssd_crop:
        image, boxes, labels = ssd_crop(image, boxes, labels, fold(seed, 2), config)
    if config.photometric > 0:
        image = photometric_distort(image, fold(seed, 3), config)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    if config.horizontal_flip > 0:
        flip = tf.random.stateless_uniform([], fold(seed, 4)) <= config.horizontal_flip
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        boxes = tf.cond(flip, lambda: tf.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]],
                                               axis=-1), lambda: boxes)
    height = tf.cast(tf.shape(image)[0], tf.float32)
    boxes = boxes / tf.stack([width, height, width, height])
    image = resize_image(image, size, interpolation)
    image.set_shape((*size, 3))
    return image, boxes, labels


def _training_tables(source):
    """Pixel boxes and labels of every image (ignored objects left out) as ragged constants, by image index."""
    boxes, labels = [], []
    for index, (height, width) in enumerate(source.sizes):
        image_boxes, image_labels = source.training_boxes(index)
        boxes.append(image_boxes.astype(np.float64) * [width, height, width, height])
        labels.append(image_labels)
    splits = np.cumsum([0] + [len(b) for b in labels])
    return (tf.RaggedTensor.from_row_splits(np.concatenate(boxes).astype(np.float32).reshape(-1, 4), splits),
            tf.RaggedTensor.from_row_splits(np.concatenate(labels).astype(np.int32), splits))


def make_detection_train_dataset(source, image_size, batch_size, augment=None, seed=0, start_epoch=0, epochs=1,
                                 anchors=None, iou_threshold=IOU_THRESHOLD, interpolation="bicubic"):
    """Batches of (float32 images [B, H, W, 3] in [0, 255], y_true) for epochs ``start_epoch`` to ``epochs - 1``.

    ``y_true``: ``{"box_regressions": [B, A, 4] float32, "class_logits": [B, A] int32}``,
    the anchors' encoded targets and class ids (0 background). ``anchors``:
    the model's, centre form; by default cvnets' for ``image_size``.
    Returns ``(dataset, steps_per_epoch)``; every epoch has that many full batches.
    """
    size = tuple(int(s) for s in image_size)
    config = augment or DetectionAugmentConfig()
    anchors = tf.constant(ssd_anchors(*size) if anchors is None else anchors, tf.float32)
    steps = steps_per_epoch(source, batch_size)
    paths, native = tf.constant(source.paths), tf.constant(source.native)
    all_boxes, all_labels = _training_tables(source)

    def epoch_dataset(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(len(source)), seed=epoch_seed)
        dataset = tf.data.Dataset.from_tensor_slices(order).take(steps * batch_size).enumerate()

        def per_image(index, image_index):
            image_seed = tf.stack([epoch_seed[0] * 7 + epoch_seed[1], index])
            image, boxes, labels = augment_example(decode_file(paths[image_index], native[image_index]),
                                                   all_boxes[image_index], all_labels[image_index], image_seed,
                                                   config, size, interpolation)
            targets, anchor_labels = match_anchors(boxes, labels, anchors, iou_threshold)
            return image, {"box_regressions": targets, "class_logits": anchor_labels}

        dataset = dataset.map(per_image, num_parallel_calls=AUTOTUNE, deterministic=True)
        return dataset.batch(batch_size, drop_remainder=True)

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_dataset)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE), steps


def make_detection_eval_dataset(source, image_size, batch_size, interpolation="bicubic"):
    """Batches of (float32 images [B, H, W, 3] in [0, 255], info) in the source's order, every image resized to
    ``image_size`` regardless of its aspect, as cvnets evaluates; the last batch may be smaller.

    ``info``: ``{"image_id": [B] int64, "original_size": [B, 2] int32 (height, width)}``,
    to map the normalised detections back onto each original image (``coco_eval``).
    """
    size = tuple(int(s) for s in image_size)

    def prepare(path, native, image_id, original_size):
        image = resize_image(decode_file(path, native), size, interpolation)
        image.set_shape((*size, 3))
        return image, {"image_id": image_id, "original_size": original_size}

    dataset = tf.data.Dataset.from_tensor_slices((
        list(source.paths), list(source.native), np.asarray(source.image_ids, np.int64),
        np.asarray(source.sizes, np.int32).reshape(-1, 2)))
    dataset = dataset.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True).batch(batch_size)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE)
