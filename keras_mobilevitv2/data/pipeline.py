"""tf.data pipelines for training and evaluation, from image folders or TFRecord shards.

Training data is one long dataset over epochs ``start_epoch .. epochs - 1``;
epoch ``e`` is a pure function of (seed, e): its order, crops and flips come
from stateless random ops and the Keras augmentation layers are reseeded at its
start. A run resumed at epoch ``e`` therefore sees what an uninterrupted run
would have seen.
"""

import dataclasses
import io
import os

import numpy as np
import tensorflow as tf

from .augment import Augmenter, center_crop
from .folders import ImageFolder

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_CACHE_BYTES = 2 << 30


def _decode_with_pillow(path):
    from PIL import Image

    path = path.item() if isinstance(path, np.ndarray) else path  # tf.numpy_function passes a 0-d array
    with Image.open(path.decode() if isinstance(path, bytes) else path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_native(contents):
    """JPEG or PNG bytes -> uint8 RGB; 16-bit PNGs are scaled to 8 bits, alpha is dropped."""
    is_png = tf.equal(tf.strings.substr(contents, 0, 4), b"\x89PNG")

    def png():
        wide = tf.cast(tf.io.decode_png(contents, channels=3, dtype=tf.uint16), tf.float32)
        return tf.cast(tf.round(wide / 257.0), tf.uint8)

    def jpeg():
        return tf.io.decode_jpeg(contents, channels=3)

    image = tf.cond(is_png, png, jpeg)
    image.set_shape((None, None, 3))
    return image


def decode_file(path, native):
    """An image file -> uint8 RGB, natively where TensorFlow can, else with Pillow."""

    def pillow():
        image = tf.numpy_function(_decode_with_pillow, [path], tf.uint8, stateful=False)
        image.set_shape((None, None, 3))
        return image

    return tf.cond(native, lambda: decode_native(tf.io.read_file(path)), pillow)


@dataclasses.dataclass(frozen=True)
class TFRecordSource:
    """TFRecord shards written by ``make_tfrecords``: files, number of examples, class names."""

    files: tuple
    count: int
    class_names: tuple

    def __len__(self):
        return self.count


_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}


def _parse_record(record):
    example = tf.io.parse_single_example(record, _FEATURES)
    return decode_native(example["image/encoded"]), tf.cast(example["image/class/label"], tf.int32)


def _examples(source, order_seed=None, cached=None):
    """A dataset of (uint8 image, label), shuffled by ``order_seed`` ([2] tensor) when given.

    ``cached``: the image folder's files, read into memory by ``_read_into_memory``, if they fit.
    Shuffles are stateless: tf.data's own shuffle takes no seed tensor once a global seed is set.
    """
    if isinstance(source, ImageFolder):
        labels = tf.constant(source.labels, tf.int32)
        indices = tf.range(len(source))
        if order_seed is not None:
            indices = tf.random.experimental.stateless_shuffle(indices, seed=order_seed)
        dataset = tf.data.Dataset.from_tensor_slices(indices)
        if cached is not None:
            return dataset.map(lambda i: (decode_native(cached[i]), labels[i]),
                               num_parallel_calls=AUTOTUNE, deterministic=True)
        paths = tf.constant(source.paths)
        native = tf.constant(source.native)
        return dataset.map(lambda i: (decode_file(paths[i], native[i]), labels[i]),
                           num_parallel_calls=AUTOTUNE, deterministic=True)
    files = tf.constant(source.files)
    if order_seed is not None:
        files = tf.random.experimental.stateless_shuffle(files, seed=order_seed)
    dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=min(8, len(source.files)), num_parallel_calls=AUTOTUNE,
        deterministic=True)
    if order_seed is not None:
        window = min(len(source), 10_000)  # shuffle the serialised records within windows of this many
        dataset = dataset.batch(window).enumerate().map(
            lambda i, records: tf.random.experimental.stateless_shuffle(records, seed=order_seed + [i, 1])
        ).unbatch()
    return dataset.map(_parse_record, num_parallel_calls=AUTOTUNE, deterministic=True)


def _read_into_memory(source, cache_bytes):
    """The files of a small image folder as one string tensor of JPEG / PNG bytes; None if too large.

    Files TensorFlow cannot decode are converted to PNG once here.
    """
    if not isinstance(source, ImageFolder):
        return None
    if sum(os.path.getsize(p) for p in source.paths) > cache_bytes:
        return None
    contents = []
    for path, native in zip(source.paths, source.native):
        if native:
            with open(path, "rb") as file:
                contents.append(file.read())
        else:
            from PIL import Image

            buffer = io.BytesIO()
            Image.fromarray(_decode_with_pillow(path)).save(buffer, format="PNG")
            contents.append(buffer.getvalue())
    return tf.constant(contents)


def steps_per_epoch(source, batch_size):
    steps = len(source) // batch_size
    if steps < 1:
        raise ValueError(f"{len(source)} training images are fewer than one batch of {batch_size}")
    return steps


def make_train_dataset(source, image_size, batch_size, augment, seed=0, start_epoch=0, epochs=1,
                       deterministic=False, cache_bytes=DEFAULT_CACHE_BYTES, interpolation="bicubic"):
    """Batches of (float32 images in [0, 255], one-hot labels) for epochs ``start_epoch`` to ``epochs - 1``.

    Returns ``(dataset, steps_per_epoch)``; every epoch has exactly that many full batches.
    """
    num_classes = len(source.class_names)
    steps = steps_per_epoch(source, batch_size)
    augmenter = augment if isinstance(augment, Augmenter) else Augmenter(augment, image_size, seed, interpolation)
    cached = _read_into_memory(source, cache_bytes)
    # Keras layers share one random state: run them in order when the run must be repeatable.
    keras_calls = 1 if deterministic and augmenter.uses_keras_layers else AUTOTUNE

    def epoch_dataset(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        dataset = _examples(source, epoch_seed, cached).take(steps * batch_size).enumerate()

        def per_image(index, example):
            image, label = example
            image_seed = tf.stack([epoch_seed[0] * 7 + epoch_seed[1], index])
            return index, augmenter.per_image(image, image_seed), tf.one_hot(label, num_classes)

        dataset = dataset.map(per_image, num_parallel_calls=AUTOTUNE, deterministic=True)
        if augmenter.randaugment is not None or augmenter.erasing is not None:
            dataset = dataset.map(
                lambda index, image, label: (index, augmenter.per_image_keras(image, index, epoch), label),
                num_parallel_calls=keras_calls, deterministic=True)
        dataset = dataset.map(lambda index, image, label: (image, label))
        dataset = dataset.batch(batch_size, drop_remainder=True).enumerate()

        def per_batch(index, batch):
            images, labels = batch
            batch_seed = tf.stack([epoch_seed[0] * 13 + epoch_seed[1], index])
            return augmenter.per_batch(images, labels, batch_seed, index, epoch)

        return dataset.map(per_batch, num_parallel_calls=keras_calls, deterministic=True)

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_dataset)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE), steps


def multi_scale_schedule(image_size, batch_size, num_scales=5, multiple=32):
    """MobileViT v1's variable-batch sampler: crop sizes from 0.625x to 1.25x ``image_size`` (multiples
    of 32, at most ``num_scales``), each with the batch size that keeps pixels per batch constant."""
    from ..layers import make_divisible

    low, high = image_size * 0.625, image_size * 1.25
    sizes = sorted({make_divisible(low + (high - low) * i / max(1, num_scales - 1), multiple)
                    for i in range(num_scales)})
    batches = [max(1, int(batch_size * image_size * image_size / (s * s))) for s in sizes]
    return sizes, batches


def make_multi_scale_dataset(source, image_size, batch_size, augment, seed=0, start_epoch=0, epochs=1,
                             deterministic=False, cache_bytes=DEFAULT_CACHE_BYTES, interpolation="bicubic"):
    """Like ``make_train_dataset``, but every batch has a random crop size from ``multi_scale_schedule``
    and the matching batch size; for a model built with ``input_shape=(None, None, 3)``."""
    num_classes = len(source.class_names)
    steps = steps_per_epoch(source, batch_size)
    sizes, batches = multi_scale_schedule(image_size, batch_size)
    sizes_t, batches_t = tf.constant(sizes, tf.int32), tf.constant(batches, tf.int64)
    augmenter = augment if isinstance(augment, Augmenter) else Augmenter(augment, (image_size,) * 2, seed,
                                                                         interpolation)
    cached = _read_into_memory(source, cache_bytes)
    keras_calls = 1 if deterministic and augmenter.uses_keras_layers else AUTOTUNE
    repeats = -(-steps * max(batches) // len(source)) + 1

    def epoch_dataset(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        scale = tf.random.stateless_uniform([steps], seed=epoch_seed + [0, 17], maxval=len(sizes), dtype=tf.int32)
        batch_sizes = tf.gather(batches_t, scale)
        ends = tf.cumsum(batch_sizes)
        dataset = _examples(source, epoch_seed, cached).repeat(repeats).take(ends[-1]).enumerate()

        def per_image(index, example):
            image, label = example
            batch = tf.cast(tf.searchsorted(ends, [index], side="right")[0], tf.int64)
            size = tf.gather(sizes_t, tf.gather(scale, batch))
            image_seed = tf.stack([epoch_seed[0] * 7 + epoch_seed[1], index])
            image = augmenter.per_image(image, image_seed, tf.stack([size, size]))
            return batch, index, image, tf.one_hot(label, num_classes)

        dataset = dataset.map(per_image, num_parallel_calls=AUTOTUNE, deterministic=True)
        if augmenter.randaugment is not None or augmenter.erasing is not None:
            dataset = dataset.map(
                lambda batch, index, image, label: (batch, index, augmenter.per_image_keras(image, index, epoch),
                                                    label),
                num_parallel_calls=keras_calls, deterministic=True)
        dataset = dataset.group_by_window(
            key_func=lambda batch, index, image, label: batch,
            reduce_func=lambda key, window: window.batch(tf.gather(batch_sizes, key)),
            window_size_func=lambda key: tf.gather(batch_sizes, key))

        def per_batch(batch, index, images, labels):
            batch_seed = tf.stack([epoch_seed[0] * 13 + epoch_seed[1], batch[0]])
            return augmenter.per_batch(images, labels, batch_seed, batch[0], epoch)

        return dataset.map(per_batch, num_parallel_calls=keras_calls, deterministic=True)

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_dataset)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(AUTOTUNE), steps


def make_eval_dataset(source, image_size, batch_size, crop_fraction=0.888, cache_bytes=DEFAULT_CACHE_BYTES,
                      interpolation="bicubic"):
    """Batches of (float32 images in [0, 255], one-hot labels), resized and centre-cropped as in evaluation."""
    num_classes = len(source.class_names)
    size = tuple(image_size)

    def prepare(image, label):
        image = center_crop(image, size, crop_fraction, interpolation)
        image.set_shape((*size, 3))
        return image, tf.one_hot(label, num_classes)

    dataset = _examples(source).map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size)
    if len(source) * size[0] * size[1] * 3 * 4 <= cache_bytes:
        dataset = dataset.cache()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE)
