"""tf.data pipelines of image and mask pairs: cvnets' segmentation training recipe, and validation resizing.

Training follows ``config/segmentation/*/deeplabv3_mobilevitv2.yaml`` through
``base_segmentation.py``'s transforms, in their order: random short-side resize,
horizontal flip, random crop (padded, with the ``seg_class_max_ratio`` retry),
Gaussian blur, photometric distortion, rotation. Every transform moves the mask
with the image (nearest neighbour, ``IGNORE_LABEL`` where a pixel has no
source). As in ``pipeline.py``, epoch ``e`` is a pure function of (seed, e):
order and transforms come from stateless random ops, so a run resumed at epoch
``e`` sees what an uninterrupted one would have.
"""

import dataclasses
import io
import math
import os

import numpy as np
import tensorflow as tf

from .augment import resize_image
from .pipeline import AUTOTUNE, DEFAULT_CACHE_BYTES, decode_file, decode_native, steps_per_epoch
from .segmentation import IGNORE_LABEL, read_mask_values

BLUR_RADIUS = 3  # taps each side of the Gaussian kernel: enough for cvnets' sigma < 1


@dataclasses.dataclass(frozen=True)
class SegmentationAugmentConfig:
    """Each transform of the recipe, switchable. ``preset`` gives the named sets.

    Sizes are relative to the crop: with a 512 crop the short side is drawn from
    256..768 and the long side kept at most 1024, cvnets' numbers.
    """

    short_side_scale: tuple = (0.5, 1.5)  # random short-side resize, of the crop's short side; None: off
    max_side_scale: float = 2.0  # of the crop's long side
    horizontal_flip: bool = True
    random_crop: bool = True  # False: the whole image resized to the crop size
    seg_class_max_ratio: float = 0.75  # retry crops where one class has this share of labelled pixels; 1: off
    crop_tries: int = 10
    gaussian_blur: float = 0.5  # probability; sigma uniform in [0, 1) pixels
    photometric: float = 0.5  # probability of each distortion; 0 turns it off
    rotation: float = 10.0  # degrees either way; 0 turns it off

    @classmethod
    def preset(cls, name):
        """``recipe``: cvnets' VOC and ADE20k recipe. ``light``: resize (0.75-1.25) and crop only, for small
        or orientation-sensitive data (digits). ``none``: each image resized to the crop size."""
        if name == "recipe":
            return cls()
        if name == "light":
            return cls(short_side_scale=(0.75, 1.25), horizontal_flip=False, gaussian_blur=0.0, photometric=0.0,
                       rotation=0.0)
        if name == "none":
            return cls(short_side_scale=None, horizontal_flip=False, random_crop=False, gaussian_blur=0.0,
                       photometric=0.0, rotation=0.0)
        raise ValueError(f"unknown augmentation preset {name!r}: recipe, light or none")


def resize_mask(mask, size):
    """Nearest-neighbour resize of an int32 [H, W] mask, on the same pixel grid as ``resize_image``."""
    return tf.image.resize(mask[..., tf.newaxis], size, method="nearest")[..., 0]


def resize_pair(image, mask, size):
    return resize_image(image, size, "bicubic"), resize_mask(mask, size)


def random_short_side_resize(image, mask, short_side_range, max_side, seed):
    """cvnets' RandomShortSizeResize: the short side to a random whole number in ``short_side_range`` (both
    included), unless that makes the long side exceed ``max_side``. Image bicubic, mask nearest."""
    low, high = short_side_range
    short_side = tf.random.stateless_uniform([], seed, minval=low, maxval=high + 1, dtype=tf.int32)
    shape = tf.cast(tf.shape(mask), tf.float32)
    scale = tf.minimum(tf.cast(short_side, tf.float32) / tf.reduce_min(shape), max_side / tf.reduce_max(shape))
    size = tf.maximum(tf.cast(tf.floor(shape * scale), tf.int32), 1)
    return resize_pair(image, mask, size)


def horizontal_flip(image, mask, seed):
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(flip, lambda: (image[:, ::-1], mask[:, ::-1]), lambda: (image, mask))


def _balanced(mask, max_ratio):
    """True when labelled pixels exist and no class holds ``max_ratio`` of them."""
    counts = tf.math.bincount(tf.reshape(mask, [-1]), minlength=256, maxlength=256)[:IGNORE_LABEL]
    total = tf.reduce_sum(counts)
    return tf.logical_and(total > 0, tf.cast(tf.reduce_max(counts), tf.float32)
                          < max_ratio * tf.cast(total, tf.float32))


def random_crop(image, mask, size, seed, max_ratio=1.0, tries=10):
    """cvnets' RandomCrop with ``pad_if_needed``: pads bottom and right to ``size`` (image 0, mask
    ``IGNORE_LABEL``), then crops at a random place. With ``max_ratio`` < 1, up to ``tries`` places are
    checked and the first where no class holds ``max_ratio`` of the labelled pixels is taken; if none is,
    one more random place. A place with no labelled pixel counts as a failed try (cvnets keeps it: its loop
    skips the redraw there)."""
    height, width = size
    shape = tf.shape(mask)
    pad_h, pad_w = tf.maximum(height - shape[0], 0), tf.maximum(width - shape[1], 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])
    mask = tf.pad(mask, [[0, pad_h], [0, pad_w]], constant_values=IGNORE_LABEL)
    top_seed, left_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    tops = tf.random.stateless_uniform([tries + 1], top_seed, maxval=shape[0] + pad_h - height + 1, dtype=tf.int32)
    lefts = tf.random.stateless_uniform([tries + 1], left_seed, maxval=shape[1] + pad_w - width + 1,
                                        dtype=tf.int32)

    def window(tensor, k):
        return tensor[tops[k]:tops[k] + height, lefts[k]:lefts[k] + width]

    choice = 0
    if max_ratio < 1.0:
        choice = tf.while_loop(
            lambda k: tf.cond(k < tries, lambda: tf.logical_not(_balanced(window(mask, k), max_ratio)),
                              lambda: tf.constant(False)),
            lambda k: (k + 1,), [tf.constant(0)])[0]
    return window(image, choice), window(mask, choice)


def gaussian_blur(image, sigma):
    """A separable Gaussian blur of standard deviation ``sigma`` pixels, edges mirrored (PIL's GaussianBlur)."""
    taps = tf.range(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel = tf.tile((kernel / tf.reduce_sum(kernel))[:, tf.newaxis, tf.newaxis], [1, 3, 1])  # [taps, 3, 1]
    padded = tf.pad(image[tf.newaxis], [[0, 0], [BLUR_RADIUS] * 2, [BLUR_RADIUS] * 2, [0, 0]], mode="SYMMETRIC")
    rows = tf.nn.depthwise_conv2d(padded, kernel[:, tf.newaxis], [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(rows, kernel[tf.newaxis], [1, 1, 1, 1], "VALID")[0]


def _gray(image):
    """PIL's RGB -> L weights, as [H, W, 1]."""
    return tf.tensordot(image, tf.constant([0.299, 0.587, 0.114]), axes=1)[..., tf.newaxis]


def photometric_distort(image, seed, p=0.5):
    """cvnets' PhotometricDistort (PIL factors): brightness 0.875-1.125, contrast 0.5-1.5 (before or after the
    colour changes), saturation 0.5-1.5, hue +-0.05 of the circle, channel permutation; each with probability
    ``p``. Image float in [0, 255]."""
    draw_seed, factor_seed, permute_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    r = tf.random.stateless_uniform([7], draw_seed) < p
    u = tf.random.stateless_uniform([4], factor_seed)
    brightness, contrast, saturation, hue = 0.875 + 0.25 * u[0], 0.5 + u[1], 0.5 + u[2], 0.1 * u[3] - 0.05

    def maybe(apply, change, image):
        return tf.cond(apply, lambda: tf.clip_by_value(change(image), 0.0, 255.0), lambda: image)

    def adjust_contrast(image):
        mean = tf.round(tf.reduce_mean(_gray(image)))
        return mean + contrast * (image - mean)

    image = maybe(r[0], lambda x: x * brightness, image)
    contrast_first = r[1]
    image = maybe(tf.logical_and(contrast_first, r[2]), adjust_contrast, image)
    image = maybe(r[3], lambda x: _gray(x) + saturation * (x - _gray(x)), image)
    image = maybe(r[4], lambda x: tf.image.adjust_hue(x / 255.0, hue) * 255.0, image)
    image = maybe(tf.logical_and(tf.logical_not(contrast_first), r[5]), adjust_contrast, image)
    order = tf.random.experimental.stateless_shuffle(tf.range(3), seed=permute_seed)
    return maybe(r[6], lambda x: tf.gather(x, order, axis=-1), image)


def rotate(image, mask, degrees):
    """Rotation about the centre, counter-clockwise for positive ``degrees`` (PIL's), same size: image
    bilinear filled with 0, mask nearest filled with ``IGNORE_LABEL``."""
    theta = degrees * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    shape = tf.shape(mask)
    height, width = tf.cast(shape[0] - 1, tf.float32), tf.cast(shape[1] - 1, tf.float32)
    # Output (x, y) samples the input at the inverse rotation about the centre ((W - 1) / 2, (H - 1) / 2).
    transform = tf.stack([cos, -sin, (width - cos * width + sin * height) / 2.0,
                          sin, cos, (height - sin * width - cos * height) / 2.0, 0.0, 0.0])[tf.newaxis]

    def warp(tensor, fill, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=tensor[tf.newaxis], transforms=transform, output_shape=shape, fill_value=fill,
            interpolation=interpolation, fill_mode="CONSTANT")[0]

    return (warp(image, 0.0, "BILINEAR"),
            warp(mask[..., tf.newaxis], float(IGNORE_LABEL), "NEAREST")[..., 0])


def augment_pair(image, mask, seed, config, crop_size):
    """One training pair -> (float32 [h, w, 3] in [0, 255], int32 [h, w]) for ``crop_size`` (h, w)."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 6))  # one per transform: each can be off
    image = tf.cast(image, tf.float32)
    crop_h, crop_w = crop_size
    if config.short_side_scale is not None:
        low, high = (int(round(s * min(crop_size))) for s in config.short_side_scale)
        image, mask = random_short_side_resize(image, mask, (low, high), config.max_side_scale * max(crop_size),
                                               seeds[0])
    if config.horizontal_flip:
        image, mask = horizontal_flip(image, mask, seeds[1])
    if config.random_crop:
        image, mask = random_crop(image, mask, crop_size, seeds[2], config.seg_class_max_ratio, config.crop_tries)
    else:
        image, mask = resize_pair(image, mask, crop_size)
    if config.gaussian_blur > 0:
        blur = tf.random.stateless_uniform([2], seeds[3])
        image = tf.cond(blur[0] < config.gaussian_blur, lambda: gaussian_blur(image, blur[1]), lambda: image)
    if config.photometric > 0:
        image = photometric_distort(image, seeds[4], config.photometric)
    if config.rotation > 0:
        angle = tf.random.stateless_uniform([], seeds[5], -config.rotation, config.rotation)
        image, mask = rotate(image, mask, angle)
    image = tf.clip_by_value(tf.round(image), 0.0, 255.0)  # whole values, as the PIL pipeline's uint8
    image.set_shape((crop_h, crop_w, 3))
    mask.set_shape((crop_h, crop_w))
    return image, mask


def _mask_from_png(contents, label_map):
    """8-bit grayscale PNG bytes -> int32 class ids [H, W]."""
    return tf.gather(label_map, tf.cast(tf.io.decode_png(contents, channels=1)[..., 0], tf.int32))


def _mask_from_file(path, native, label_map):
    """A mask file -> int32 class ids: 8-bit grayscale PNGs natively; palette PNGs, which TensorFlow
    expands to RGB, and the rest with Pillow."""

    def pillow():
        values = tf.numpy_function(read_mask_values, [path], tf.uint8, stateful=False)
        values.set_shape((None, None))
        return tf.gather(label_map, tf.cast(values, tf.int32))

    return tf.cond(native, lambda: _mask_from_png(tf.io.read_file(path), label_map), pillow)


def _png_bytes(array):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _read_pairs_into_memory(source, cache_bytes):
    """A small set's images and masks as two string tensors that TensorFlow decodes itself; None if too large.

    Images TensorFlow cannot decode become PNG, masks it cannot (palette PNGs) become 8-bit grayscale PNG.
    """
    paths = source.image_paths + source.mask_paths
    if sum(os.path.getsize(p) for p in paths) > cache_bytes:
        return None
    from PIL import Image

    def contents(path, native, convert):
        if native:
            with open(path, "rb") as file:
                return file.read()
        return _png_bytes(convert(path))

    def rgb(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)

    images = [contents(p, n, rgb) for p, n in zip(source.image_paths, source.native)]
    masks = [contents(p, n, read_mask_values) for p, n in zip(source.mask_paths, source.native_masks)]
    return tf.constant(images), tf.constant(masks)


def _pairs(source, order_seed=None, cached=None):
    """A dataset of (uint8 image, int32 mask), shuffled by ``order_seed`` ([2] tensor) when given."""
    label_map = tf.constant(source.label_map, tf.int32)
    indices = tf.range(len(source))
    if order_seed is not None:
        indices = tf.random.experimental.stateless_shuffle(indices, seed=order_seed)
    dataset = tf.data.Dataset.from_tensor_slices(indices)
    if cached is not None:
        images, masks = cached
        return dataset.map(lambda i: (decode_native(images[i]), _mask_from_png(masks[i], label_map)),
                           num_parallel_calls=AUTOTUNE, deterministic=True)
    image_paths, native = tf.constant(source.image_paths), tf.constant(source.native)
    mask_paths, native_masks = tf.constant(source.mask_paths), tf.constant(source.native_masks)
    return dataset.map(lambda i: (decode_file(image_paths[i], native[i]),
                                  _mask_from_file(mask_paths[i], native_masks[i], label_map)),
                       num_parallel_calls=AUTOTUNE, deterministic=True)


def _size(size):
    return (int(size), int(size)) if np.ndim(size) == 0 else tuple(int(s) for s in size)


def make_segmentation_train_dataset(source, crop_size, batch_size, augment="recipe", seed=0, start_epoch=0,
                                    epochs=1, cache_bytes=DEFAULT_CACHE_BYTES):
    """Batches of (float32 images [B, H, W, 3] in [0, 255], int32 masks [B, H, W] with ``IGNORE_LABEL``) for
    epochs ``start_epoch`` to ``epochs - 1``; ``crop_size``: (H, W) or one int; ``augment``: a preset name or a
    ``SegmentationAugmentConfig``.

    Returns ``(dataset, steps_per_epoch)``; every epoch has exactly that many full batches.
    """
    crop_size = _size(crop_size)
    config = augment if isinstance(augment, SegmentationAugmentConfig) else SegmentationAugmentConfig.preset(augment)
    steps = steps_per_epoch(source, batch_size)
    cached = _read_pairs_into_memory(source, cache_bytes)

    def epoch_dataset(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        dataset = _pairs(source, epoch_seed, cached).take(steps * batch_size).enumerate()

        def per_pair(index, pair):
            image_seed = tf.random.experimental.stateless_fold_in(epoch_seed, index)
            return augment_pair(*pair, image_seed, config, crop_size)

        dataset = dataset.map(per_pair, num_parallel_calls=AUTOTUNE, deterministic=True)
        return dataset.batch(batch_size, drop_remainder=True)

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_dataset)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE), steps


def make_segmentation_val_dataset(source, image_size, batch_size, cache_bytes=DEFAULT_CACHE_BYTES):
    """Batches of (float32 images in [0, 255], int32 masks), every pair resized to ``image_size`` (image bicubic,
    mask nearest): cvnets' validation during training. The evaluation protocol (original size) is
    ``load_segmentation_pair``'s."""
    size = _size(image_size)

    def prepare(image, mask):
        image, mask = resize_pair(image, mask, size)
        image.set_shape((*size, 3))
        mask.set_shape(size)
        return image, mask

    dataset = _pairs(source).map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True).batch(batch_size)
    if len(source) * size[0] * size[1] * (3 + 1) * 4 <= cache_bytes:
        dataset = dataset.cache()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE)
