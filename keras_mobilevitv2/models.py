"""Model builders in the style of ``keras.applications``, and the model registry."""

import os

from . import architectures
from .layers import conv_norm_act, inverted_residual, layers_for, mobilevit_block, mobilevitv2_block
from .preprocessing import PREPROCESSING_LAYER, PreprocessingConfig

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def _input_shape(input_shape, input_tensor, default_size):
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        return (default_size, default_size, 3)
    input_shape = tuple(None if s is None else int(s) for s in input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3) for RGB images, got {input_shape}")
    if any(s is not None and s < 1 for s in input_shape[:2]):
        raise ValueError(f"input_shape must have positive height and width, got {input_shape}")
    return input_shape


def _mixed_precision(keras):
    """Whether the global dtype policy computes in 16 bits (Keras 3 or tf_keras)."""
    config = getattr(keras, "config", None)
    policy = config.dtype_policy() if config is not None and hasattr(config, "dtype_policy") \
        else keras.mixed_precision.global_policy()
    return policy.name.startswith("mixed")


def build_model(architecture, input_shape=None, include_top=True, weights=None, input_tensor=None,
                classes=1000, pooling=None, classifier_activation="softmax", include_preprocessing=True,
                class_names=None, name=None, keras_module="keras"):
    """Builds the network an ``Architecture`` describes. The public builders call this."""
    if isinstance(architecture, str):
        architecture = architectures.get_architecture(architecture)
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        if classes == 1000 and len(class_names) != 1000:
            classes = len(class_names)
        if len(class_names) != classes:
            raise ValueError(f"{len(class_names)} class names given for {classes} classes")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError(
            "weights='imagenet' cannot be downloaded here: download an official checkpoint "
            "and pass its path, or run `mobilevitv2 import-weights`")

    layers = layers_for(keras_module)
    keras = layers.keras
    input_shape = _input_shape(input_shape, input_tensor, architecture.input_size)
    if input_tensor is None:
        inputs = keras.layers.Input(shape=input_shape, name="image")
    else:
        inputs = input_tensor

    facts = PreprocessingConfig(
        input_size=tuple(s or architecture.input_size for s in input_shape[:2]),
        crop_fraction=architecture.crop_fraction,
        interpolation=architecture.interpolation,
        input_max=255.0 if include_preprocessing else 1.0,
        class_names=class_names if include_top else None,
        architecture=architecture.name,
    )
    x = layers.Preprocessing(**facts.layer_config(), name=PREPROCESSING_LAYER)(inputs)

    x = conv_norm_act(x, architecture.stem_channels, 3, strides=2, name="stem")
    for stage_index, stage in enumerate(architecture.stages, start=1):
        prefix = f"layer{stage_index}"
        if isinstance(stage, architectures.InvertedResidualStage):
            for block in range(stage.num_blocks):
                x = inverted_residual(x, stage.channels, stage.strides if block == 0 else 1,
                                      stage.expansion, name=f"{prefix}_{block}")
            continue
        x = inverted_residual(x, stage.channels, stage.strides, stage.expansion, name=f"{prefix}_0")
        if architecture.family == "mobilevitv2":
            x = mobilevitv2_block(x, stage.attention_dim, stage.num_layers, stage.ffn_dim,
                                  architecture.patch_size, name=f"{prefix}_1")
        else:
            x = mobilevit_block(x, stage.attention_dim, stage.num_layers, stage.ffn_dim,
                                stage.num_heads, architecture.patch_size, name=f"{prefix}_1")
    if architecture.head_channels:
        x = conv_norm_act(x, architecture.head_channels, 1, name="head")

    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if architecture.classifier_dropout:
            x = keras.layers.Dropout(architecture.classifier_dropout, name="dropout")(x)
        x = keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype="float32" if _mixed_precision(keras) else None)(x)  # logits stay float32
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name or architecture.name)

    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model, path):
    """Loads a Keras weights file or an official / timm PyTorch checkpoint into ``model``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.endswith(CHECKPOINT_SUFFIXES):
        from .weights import load_pytorch_checkpoint

        load_pytorch_checkpoint(model, path)
    elif path.endswith(".weights.h5"):
        model.load_weights(path)
    else:
        raise ValueError(
            f"{path}: weights must be a Keras '.weights.h5' file or a PyTorch checkpoint "
            f"({', '.join(CHECKPOINT_SUFFIXES)})")


def MobileViTv2(width_multiplier=1.0, input_shape=None, include_top=True, weights=None, input_tensor=None,
                classes=1000, pooling=None, classifier_activation="softmax", include_preprocessing=True,
                class_names=None, name=None, keras_module="keras"):
    """MobileViTv2 (Mehta & Rastegari, 2022) at a width multiplier, 0.5 to 2.0 in the paper.

    Args:
        width_multiplier: scales every width; 0.5, 0.75, ... 2.0 are the released models.
        input_shape: (height, width, 3); (256, 256, 3) by default; (None, None, 3) for any size.
        include_top: whether to add pooling and the classifier.
        weights: None, or the path of a ``.weights.h5`` file or an official / timm checkpoint.
        input_tensor: an optional Keras tensor to build on.
        classes: outputs of the classifier.
        pooling: with ``include_top=False``: None (feature map), "avg" or "max".
        classifier_activation: "softmax", or None for logits.
        include_preprocessing: True: the model takes RGB in [0, 255] and scales inside;
            False: RGB in [0, 1], as the official code expects.
        class_names: optional names of the classes, carried in the saved model.
        name: the model's name; the zoo name (``mobilevitv2_100`` ...) by default.
        keras_module: "keras" (Keras 3) or "tf_keras" (Keras 2, for quantization-aware training).
    """
    return build_model(
        architectures.mobilevitv2(width_multiplier), input_shape, include_top, weights, input_tensor,
        classes, pooling, classifier_activation, include_preprocessing, class_names, name, keras_module)


def MobileViT(variant="xxs", input_shape=None, include_top=True, weights=None, input_tensor=None,
              classes=1000, pooling=None, classifier_activation="softmax", include_preprocessing=True,
              class_names=None, name=None, keras_module="keras"):
    """MobileViT v1 (Mehta & Rastegari, 2021): variant "xxs", "xs" or "s". Arguments as ``MobileViTv2``."""
    if variant not in architectures.MOBILEVIT_VARIANTS:
        raise ValueError(f"variant must be one of {list(architectures.MOBILEVIT_VARIANTS)}, got {variant!r}")
    return build_model(
        architectures.MOBILEVIT_VARIANTS[variant], input_shape, include_top, weights, input_tensor,
        classes, pooling, classifier_activation, include_preprocessing, class_names, name, keras_module)


def list_models():
    """The names ``create_model`` takes."""
    return list(architectures.ARCHITECTURES)


def create_model(name, **kwargs):
    """Builds a model of the zoo by name (see ``list_models``); keyword arguments as ``MobileViTv2``."""
    return build_model(architectures.get_architecture(name), **kwargs)
