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


@dataclasses.dataclass(frozen=True)
class TaskRecipe:
    """What a task's official recipe sets where a run leaves a setting None, and when it fits a run."""

    model: str
    image_size: int
    epochs: int
    label_smoothing: float
    batch_size: int  # the global batch the learning rates below were tuned at (they scale linearly)
    warmup_steps: int
    warmup_start_learning_rate: float
    # The official recipe is for runs like the official ones: at least this many training images, a tenth
    # of its epochs or more, and (dense tasks) a backbone trained on ImageNet first.
    official_min_images: int
    official_needs_weights: bool
    # Otherwise the small-data recipe, measured on the kit's sample sets (README, Training): this
    # augmentation preset and this peak learning rate for width 0.5, at any batch.
    small_data_augmentation: str
    small_data_learning_rate: float


TASK_RECIPES = {
    # ImageNet: SPEC.md; the learning rates and weight decay per width are MOBILEVITV2_RECIPE's.
    "classification": TaskRecipe("mobilevitv2_050", 256, 300, 0.1, RECIPE_BATCH_SIZE, RECIPE_WARMUP_STEPS, 1e-6,
                                 official_min_images=100_000, official_needs_weights=False,
                                 small_data_augmentation="light", small_data_learning_rate=0.002),
    # cvnets config/segmentation/pascal_voc/deeplabv3_mobilevitv2.yaml: AdamW, lr 5e-4 to 1e-6 (cosine),
    # weight decay 0.05, 500 warm-up iterations from 5e-5, 50 epochs, 512x512 crops, batch 128 (32 x 4 GPUs),
    # clipping 10, EMA 0.0005, auxiliary loss weight 0.4; the backbone starts from ImageNet.
    "segmentation": TaskRecipe("deeplabv3_mobilevitv2_050", 512, 50, 0.0, 128, 500, 5e-5,
                               official_min_images=5_000, official_needs_weights=True,
                               small_data_augmentation="light", small_data_learning_rate=0.004),
    # cvnets config/detection/ssd_coco/mobilevit_v2.yaml: AdamW, lr 9e-4 to 1e-6 (cosine), weight decay 0.05,
    # 500 warm-up iterations from 9e-5, 200 epochs, 320x320, batch 128 (32 x 4 GPUs), EMA 0.0005; the
    # backbone starts from ImageNet.
    "detection": TaskRecipe("ssdlite_mobilevitv2_050", 320, 200, 0.0, 128, 500, 9e-5,
                            official_min_images=20_000, official_needs_weights=True,
                            small_data_augmentation="none", small_data_learning_rate=0.003),
}
RECIPES = ("official", "small-data")
# How each recipe sets the peak learning rate, as ``train`` prints it.
LEARNING_RATE_RULES = {
    "official": "the recipe's, linear in the batch",
    "small-data": "measured on small data, at any batch; the recipe's ratio for other widths",
}


def choose_recipe(task, images, classes, epochs, weights_loaded):
    """``(recipe, why)``: the official recipe where a run is like the official ones, else ``small-data``, with
    weights loaded or not. See ``TaskRecipe`` for the conditions.

    Fine-tuning takes the small-data rate too: fine-tuning a digits 0-4 model on 5-9 for 3 epochs at 32x32,
    lr 0.0005 reached 70.4%, 0.001 81.6%, 0.002 84.9%, 0.004 90.5% (from scratch: 55.3%).
    """
    recipe = TASK_RECIPES[task]
    per_class = f", {images / max(classes, 1):,.0f} per class" if task == "classification" else ""
    data = f"{images:,} training images{per_class}, {epochs} epochs"
    short = []
    if images < recipe.official_min_images:
        short.append(f"{recipe.official_min_images:,}+ images")
    if epochs * 10 < recipe.epochs:
        short.append(f"{-(-recipe.epochs // 10)}+ epochs")
    if recipe.official_needs_weights and not weights_loaded:
        short.append("a backbone trained on ImageNet first (--init-from)")
    if not short:
        return "official", f"{data}: a run like the official {task} recipe's"
    return "small-data", f"{data}{', weights loaded' if weights_loaded else ''}: the official recipe is for " + \
        " and ".join(short)


# peak lr, min lr, weight decay at TASK_RECIPES' batch
DENSE_RECIPES = {"segmentation": (0.0005, 1e-6, 0.05), "detection": (0.0009, 1e-6, 0.05)}


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. ``None`` means: the chosen recipe's value for this task, model and batch
    (``recipe``: the official one or small-data; see ``choose_recipe``)."""

    model: str | None = None  # a registry name; default: the task's (mobilevitv2_050, deeplabv3_mobilevitv2_050, ...)
    task: str | None = None  # default: the model's task, else classification
    image_size: int | tuple | None = None  # S or (H, W); default: the task's (256, 512, 320)
    epochs: int | None = None  # default: the task's recipe (300, 50, 200)
    batch_size: int = 128  # global, over all replicas
    learning_rate: float | None = None  # peak; default: the recipe's, scaled by batch_size / 1024
    min_learning_rate: float | None = None
    weight_decay: float | None = None
    warmup_steps: int | None = None  # default: the recipe's (20,000; 500), at most a fifteenth of the run
    warmup_start_learning_rate: float | None = None
    global_clipnorm: float | None = 10.0
    label_smoothing: float | None = None
    aux_loss_weight: float = 0.4  # segmentation: the auxiliary head's share of the loss; 0 trains without it
    output_stride: int | None = None  # segmentation: 8 or 16; default: the model's (16)
    ema_momentum: float = 0.9995  # Keras' convention: the recipe's EMA momentum 0.0005; 0 turns EMA off
    # official, small-data, or auto: chosen from the data, epochs and weights (choose_recipe)
    recipe: str = "auto"
    augmentation: str | None = None  # preset: recipe, light, none (detection: zoom); default: the recipe's
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
        """The task's augmentation: the preset ``augmentation`` with ``augment_overrides`` (of a resolved config)."""
        task = self.task_defaults().task
        if task == "segmentation":
            from ..data.segmentation_pipeline import SegmentationAugmentConfig as config_class
        elif task == "detection":
            from ..data.detection_pipeline import DetectionAugmentConfig as config_class
        else:
            config_class = AugmentConfig
        unknown = sorted(set(self.augment_overrides) - {f.name for f in dataclasses.fields(config_class)})
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an augmentation of {self.task_defaults().task} "
                             f"(its settings: {', '.join(f.name for f in dataclasses.fields(config_class))})")
        if self.augmentation is None:
            raise ValueError("the augmentation preset is chosen with the recipe: call augment_config() on "
                             "TrainConfig.resolved(...)'s config")
        return dataclasses.replace(config_class.preset(self.augmentation), **self.augment_overrides)

    @property
    def input_size(self):
        """(height, width) of the training images (after ``task_defaults``)."""
        size = self.image_size
        return (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)

    def task_defaults(self):
        """A copy with the task, model, image size, epochs and label smoothing filled in from the task's recipe."""
        from ..models import get_entry

        task = self.task or (get_entry(self.model).task if self.model else "classification")
        if task not in TASK_RECIPES:
            raise ValueError(f"task must be one of {', '.join(TASK_RECIPES)}, got {task!r}")
        recipe = TASK_RECIPES[task]
        model = self.model or recipe.model
        if get_entry(model).task != task:
            raise ValueError(f"{model} is a {get_entry(model).task} model, not a {task} model")
        return dataclasses.replace(
            self, task=task, model=model,
            image_size=recipe.image_size if self.image_size is None else self.image_size,
            epochs=recipe.epochs if self.epochs is None else self.epochs,
            label_smoothing=recipe.label_smoothing if self.label_smoothing is None else self.label_smoothing)

    def resolved(self, steps_per_epoch, images, classes):
        """A copy with every ``None`` replaced by the chosen recipe's value for this task, model, batch and
        length, and ``recipe`` by the one chosen for ``images`` training images of ``classes`` classes;
        and why it was chosen."""
        from ..models import get_entry

        config = self.task_defaults()
        recipe = TASK_RECIPES[config.task]
        if config.recipe == "auto":
            name, why = choose_recipe(config.task, images, classes, config.epochs, bool(config.init_from))
        elif config.recipe in RECIPES:
            name, why = config.recipe, "asked for"
        else:
            raise ValueError(f"unknown recipe {config.recipe!r}: auto, {', '.join(RECIPES)}")
        architecture = get_architecture(get_entry(config.model).architecture)
        if architecture.family == "mobilevitv2":
            width = int(architecture.name.split("_")[1]) / 100
            backbone_recipe = MOBILEVITV2_RECIPE[min(MOBILEVITV2_RECIPE, key=lambda w: abs(w - width))]
        else:
            backbone_recipe = MOBILEVIT_RECIPE
        width_ratio = backbone_recipe[0] / MOBILEVITV2_RECIPE[0.5][0]  # wider models take smaller steps
        peak, minimum, decay = DENSE_RECIPES.get(config.task, backbone_recipe)
        if name == "official":
            learning_rate = peak * config.batch_size / recipe.batch_size  # linear scaling
        else:
            # Not scaled with the batch: on the digits at batch 64, 0.002 beat its square-root scaling from
            # batch 32 (0.0028) by 0.8 points at 32x32 and 8 points at 64x64 (4 epochs).
            learning_rate = recipe.small_data_learning_rate * width_ratio
        learning_rate = config.learning_rate or learning_rate
        return dataclasses.replace(
            config,
            recipe=name,
            augmentation=config.augmentation or ("recipe" if name == "official" else recipe.small_data_augmentation),
            learning_rate=learning_rate,
            min_learning_rate=config.min_learning_rate or learning_rate * minimum / peak,
            weight_decay=decay if config.weight_decay is None else config.weight_decay,
            warmup_steps=(min(recipe.warmup_steps, steps_per_epoch * config.epochs // 15)
                          if config.warmup_steps is None else config.warmup_steps),
            warmup_start_learning_rate=(min(recipe.warmup_start_learning_rate, learning_rate)
                                        if config.warmup_start_learning_rate is None
                                        else config.warmup_start_learning_rate),
        ), why


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
