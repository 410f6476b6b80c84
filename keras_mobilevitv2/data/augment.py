"""Augmentation of the official recipe, and the evaluation resize, on tf.data.

Keras has RandAugment, RandomErasing, MixUp and CutMix: they are used as they
are. Written here only what Keras lacks: random resized crop (on
``tf.image.stateless_sample_distorted_bounding_box``) and the resize-then-centre-
crop of evaluation. Per-image randomness is stateless, seeded by (run seed,
epoch, image), so an epoch's data is the same whether or not the run was
interrupted before it.
"""

import dataclasses

import tensorflow as tf

import keras


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Each augmentation of the recipe, switchable. ``preset`` gives the named sets."""

    random_resized_crop: bool = True
    crop_scale: tuple = (0.08, 1.0)
    crop_ratio: tuple = (3 / 4, 4 / 3)
    horizontal_flip: bool = True
    randaugment: bool = True
    randaugment_ops: int = 2
    randaugment_magnitude: float = 9.0  # out of 10, as timm and the paper count it
    random_erasing: float = 0.25  # probability
    mixup_alpha: float = 0.2  # 0 turns MixUp off
    cutmix_alpha: float = 1.0  # 0 turns CutMix off

    @classmethod
    def preset(cls, name):
        """``recipe``: the official ImageNet recipe. ``light``: crops of 35-100% only, for small or
        orientation-sensitive data (digits). ``none``: resize only."""
        if name == "recipe":
            return cls()
        if name == "light":
            return cls(crop_scale=(0.35, 1.0), horizontal_flip=False, randaugment=False, random_erasing=0.0,
                       mixup_alpha=0.0, cutmix_alpha=0.0)
        if name == "none":
            return cls(random_resized_crop=False, horizontal_flip=False, randaugment=False, random_erasing=0.0,
                       mixup_alpha=0.0, cutmix_alpha=0.0)
        raise ValueError(f"unknown augmentation preset {name!r}: recipe, light or none")


def resize_image(image, size, method="bicubic"):
    """Resizes to ``size`` as Pillow does (antialiased when shrinking), rounded to whole values in [0, 255]."""
    resized = tf.image.resize(tf.cast(image, tf.float32), size, method=method, antialias=True)
    return tf.clip_by_value(tf.round(resized), 0.0, 255.0)


def random_resized_crop(image, size, scale, ratio, seed, method="bicubic"):
    """A random crop of ``scale`` of the area and ``ratio`` aspect, resized to ``size``."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=ratio, area_range=scale, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    return resize_image(tf.slice(image, begin, crop_size), size, method)


def center_crop(image, size, crop_fraction, method="bicubic"):
    """Evaluation: resize so the image covers ``size / crop_fraction`` (aspect kept), crop the centre.

    For a square ``size`` this is timm's eval transform: the short side goes to
    floor(size / crop_fraction) (288 for 256 at 0.888), then a centre crop.
    """
    height, width = size
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    cover = tf.floor(tf.constant([height, width], tf.float32) / crop_fraction)
    factor = tf.reduce_max(cover / shape)
    resized_size = tf.cast(tf.maximum(tf.round(shape * factor), cover), tf.int32)
    resized = resize_image(image, resized_size, method)
    top = (resized_size[0] - height) // 2
    left = (resized_size[1] - width) // 2
    return tf.slice(resized, tf.stack([top, left, 0]), [height, width, 3])


class Augmenter:
    """The recipe's augmentations as tf.data functions, for one run.

    ``per_image(image, seed)``: random resized crop (or plain resize), flip,
    RandAugment, random erasing. ``per_batch(images, labels, seed)``: MixUp or
    CutMix, one of the two per batch when both are on (timm's switch). The Keras
    layers keep a random state of their own; it is reset at the first image and
    batch of every epoch, so that each epoch starts from a state that depends on
    (seed, epoch) alone.
    """

    def __init__(self, config, image_size, seed=0, interpolation="bicubic"):
        self.config = config
        self.image_size = tuple(image_size)
        self.interpolation = interpolation
        self.seed = int(seed)
        self.randaugment = self.erasing = self.mixup = self.cutmix = None
        if config.randaugment:
            self.randaugment = keras.layers.RandAugment(
                value_range=(0, 255), num_ops=config.randaugment_ops,
                factor=config.randaugment_magnitude / 10.0, seed=seed)
        if config.random_erasing > 0:
            self.erasing = keras.layers.RandomErasing(factor=config.random_erasing, value_range=(0, 255), seed=seed)
        if config.mixup_alpha > 0:
            self.mixup = keras.layers.MixUp(alpha=config.mixup_alpha, seed=seed)
        if config.cutmix_alpha > 0:
            self.cutmix = keras.layers.CutMix(factor=config.cutmix_alpha, seed=seed)

    @property
    def uses_keras_layers(self):
        return any(layer is not None for layer in (self.randaugment, self.erasing, self.mixup, self.cutmix))

    @staticmethod
    def _seed_generators(layers):
        generators = []
        for layer in layers:
            if layer is None:
                continue
            for sub in [layer, *layer._flatten_layers(include_self=False)]:
                for generator in [getattr(sub, "generator", None),
                                  *getattr(sub, "_backend_generators", {}).values()]:
                    if generator is not None and generator not in generators:
                        generators.append(generator)
        return generators

    def _reseed_at_epoch_start(self, layers, index, epoch, salt):
        """An op that, at the first element of an epoch, resets the layers' random state to (seed, epoch)."""
        generators = self._seed_generators(layers)

        def reseed():
            for number, generator in enumerate(generators):
                dtype = generator.state.dtype
                generator.state.assign(tf.stack([tf.cast(self.seed * 1_000_003 + salt * 101 + number, dtype),
                                                 tf.cast(epoch, dtype) * 7919]))
            return tf.constant(0)

        # Assigning in the epoch's own dataset function breaks the layers' shapes (TF 2.21); here it is safe.
        return tf.cond(tf.equal(index, 0), reseed, lambda: tf.constant(0))

    def per_image(self, image, seed, size=None):
        """Crop (or resize) to ``size`` (default: the run's image size, else a [2] tensor), and flip."""
        config = self.config
        size = self.image_size if size is None else size
        if config.random_resized_crop:
            image = random_resized_crop(image, size, config.crop_scale, config.crop_ratio, seed, self.interpolation)
        else:
            image = resize_image(image, size, self.interpolation)
        if config.horizontal_flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=seed + [0, 1])
        image.set_shape((*(size if isinstance(size, tuple) else (None, None)), 3))
        return image

    def per_image_keras(self, image, index, epoch):
        """The Keras layers' part of ``per_image``: RandAugment and random erasing.

        ``index``: the image's place in its epoch, to reseed at the epoch's first image.
        """
        with tf.control_dependencies([self._reseed_at_epoch_start([self.randaugment, self.erasing], index, epoch, 1)]):
            # Given one image inside tf.data, these layers return a batch of one with a rank-3 static
            # shape (Keras 3.15); a batch of one in, the image out, keeps shapes honest.
            batch = tf.identity(image)[tf.newaxis]
        if self.randaugment is not None:
            batch = tf.clip_by_value(tf.cast(self.randaugment(batch, training=True), tf.float32), 0.0, 255.0)
        if self.erasing is not None:
            batch = tf.cast(self.erasing(batch, training=True), tf.float32)
        shaped = tf.reshape(batch, tf.shape(image))
        shaped.set_shape(image.shape)
        return shaped

    def per_batch(self, images, labels, seed, index, epoch):
        """MixUp or CutMix of a batch; ``index``: the batch's place in its epoch."""
        if self.mixup is None and self.cutmix is None:
            return images, labels
        with tf.control_dependencies([self._reseed_at_epoch_start([self.mixup, self.cutmix], index, epoch, 2)]):
            images = tf.identity(images)

        def apply(layer):
            def mix():
                mixed = layer({"images": images, "labels": labels}, training=True)
                return tf.cast(mixed["images"], tf.float32), tf.cast(mixed["labels"], tf.float32)
            return mix

        if self.mixup is not None and self.cutmix is not None:
            use_cutmix = tf.random.stateless_uniform([], seed=seed) < 0.5
            return tf.cond(use_cutmix, apply(self.cutmix), apply(self.mixup))
        return apply(self.mixup or self.cutmix)()
