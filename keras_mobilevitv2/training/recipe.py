"""The official training recipe as data, and the optimizer and schedule built from it."""

import dataclasses

import keras
import tensorflow as tf
from keras import ops

from ..architectures import get_architecture
from ..data.augment import AugmentConfig

# MobileViTv2: peak lr, min lr, weight decay at a global batch of 1024 (SPEC.md, cvnets configs).
MOBILEVITV2_RECIPE = {
    0.5: (0.0090, 0.00090, 0.004),
    0.75: (0.0090, 0.00090, 0.008),
    1.0: (0.0075, 0.00075, 0.013),
    1.25: (0.0049, 0.00049, 0.020),
    1.5: (0.0035, 0.00035, 0.029),
    1.75: (0.0026, 0.00026, 0.039),
    2.0: (0.0020, 0.00020, 0.050),
}
# MobileViT v1 (its paper): AdamW, lr 0.002 to 0.0002, weight decay 0.01, batch 1024.
MOBILEVIT_RECIPE = (0.002, 0.0002, 0.01)
RECIPE_BATCH_SIZE = 1024
RECIPE_WARMUP_STEPS = 20_000


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. ``None`` means: the official recipe's value for this model and batch."""

    model: str = "mobilevitv2_050"
    image_size: int = 256
    epochs: int = 300
    batch_size: int = 128  # global, over all replicas
    learning_rate: float | None = None  # peak; default: the recipe's, scaled by batch_size / 1024
    min_learning_rate: float | None = None
    weight_decay: float | None = None
    warmup_steps: int | None = None  # default: 20,000 iterations, at most a fifteenth of the run
    warmup_start_learning_rate: float = 1e-6
    global_clipnorm: float | None = 10.0
    label_smoothing: float = 0.1
    ema_momentum: float = 0.9995  # Keras' convention: the recipe's EMA momentum 0.0005; 0 turns EMA off
    augmentation: str = "recipe"  # preset: recipe, light or none; fields below override it
    augment_overrides: dict = dataclasses.field(default_factory=dict)
    val_split: float = 0.1  # when no validation data is given
    seed: int = 0
    deterministic: bool = False
    mixed_precision: bool = False
    strategy: str = "auto"  # auto, mirrored, multiworker, or default (one device)
    init_from: str | None = None  # a .keras model or a PyTorch checkpoint to start from
    skip_head: bool = False
    freeze_backbone: bool = False
    multi_scale: bool = False  # MobileViT v1's variable-resolution, variable-batch sampler
    cache_bytes: int = 2 << 30

    def augment_config(self):
        return dataclasses.replace(AugmentConfig.preset(self.augmentation), **self.augment_overrides)

    def resolved(self, steps_per_epoch):
        """A copy with every ``None`` replaced by the recipe's value for this model, batch and length."""
        architecture = get_architecture(self.model)
        if architecture.family == "mobilevitv2":
            width = int(architecture.name.split("_")[1]) / 100
            peak, minimum, decay = MOBILEVITV2_RECIPE[min(MOBILEVITV2_RECIPE, key=lambda w: abs(w - width))]
        else:
            peak, minimum, decay = MOBILEVIT_RECIPE
        learning_rate = self.learning_rate or peak * self.batch_size / RECIPE_BATCH_SIZE  # linear scaling
        return dataclasses.replace(
            self,
            learning_rate=learning_rate,
            min_learning_rate=self.min_learning_rate or learning_rate * minimum / peak,
            weight_decay=decay if self.weight_decay is None else self.weight_decay,
            warmup_steps=(min(RECIPE_WARMUP_STEPS, steps_per_epoch * self.epochs // 15)
                          if self.warmup_steps is None else self.warmup_steps),
        )


def learning_rate_schedule(config, steps_per_epoch):
    """Linear warm-up from ``warmup_start_learning_rate`` to the peak, then cosine to the minimum."""
    total = max(1, steps_per_epoch * config.epochs)
    warmup = min(config.warmup_steps, total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.warmup_start_learning_rate if warmup else config.learning_rate,
        decay_steps=max(1, total - warmup),
        alpha=config.min_learning_rate / config.learning_rate,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="keras_mobilevitv2")
class AdamW(keras.optimizers.AdamW):
    """Keras' AdamW whose weight EMA warms up, as timm's does.

    Keras averages with a fixed momentum from the first step, so a short run's
    EMA still remembers its random initial weights (0.9995 keeps half of them
    after 1,400 steps). Here the momentum is min(ema_momentum, (1 + t) / (10 + t)):
    the recipe's value for long runs, a short memory early on. And on several
    replicas the global norm clipping applies to the summed gradient.
    """

    def _clip_gradients(self, grads):
        """Clips the gradient summed over replicas, as one device would (Keras 3.15 clips each share)."""
        context = tf.distribute.get_replica_context()
        if not self.global_clipnorm or context is None or context.num_replicas_in_sync == 1:
            return super()._clip_gradients(grads)
        present = [g for g in grads if g is not None]
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, present)
        # Each replica returns its 1/R share of the clipped sum; Keras then sums the shares.
        shares = iter(g / context.num_replicas_in_sync for g in super()._clip_gradients(total))
        return [None if g is None else next(shares) for g in grads]

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        step = ops.cast(self.iterations, "float32")
        momentum = ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = ops.cast(momentum, variable.dtype)
                average.assign(m * average + (1.0 - m) * variable)


def make_optimizer(config, steps_per_epoch):
    """AdamW with the recipe's schedule, clipping and EMA; norms and biases get no weight decay."""
    optimizer = AdamW(
        learning_rate=learning_rate_schedule(config, steps_per_epoch),
        weight_decay=config.weight_decay,
        beta_1=0.9,
        beta_2=0.999,
        global_clipnorm=config.global_clipnorm,
        use_ema=config.ema_momentum > 0,
        ema_momentum=config.ema_momentum if config.ema_momentum > 0 else 0.99,
    )
    # Variable names: BatchNorm, LayerNorm and one-group norm scales are "gamma" / "beta".
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer
