"""Model builders in the style of ``keras.applications``, and the registry of every task's models."""

import dataclasses
import os

from . import architectures, heads
from .backbone import backbone_features
from .heads import classifier_head, deeplabv3_head, pspnet_head, upsample_to_input
from .backend import keras_module_name
from .heads.segmentation import PSP_POOL_SIZES
from .heads.ssdlite import ssdlite_feature_maps, ssdlite_head
from .layers import layers_for
from .preprocessing import PREPROCESSING_LAYER, PreprocessingConfig, get_preprocessing

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


def _check_class_names(classes, class_names, default_classes):
    if class_names is None:
        return classes, None
    class_names = tuple(str(c) for c in class_names)
    if classes is None or (classes == default_classes and len(class_names) != default_classes):
        classes = len(class_names)
    if len(class_names) != classes:
        raise ValueError(f"{len(class_names)} class names given for {classes} classes")
    return classes, class_names


def _check_weights_argument(weights):
    if isinstance(weights, str) and weights in ("imagenet", "voc", "ade20k", "coco"):
        raise ValueError(
            f"weights={weights!r} cannot be downloaded here: download an official checkpoint "
            "and pass its path, or run `mobilevitv2 import-weights`")


def _image_input(keras, input_shape, input_tensor, default_size):
    input_shape = _input_shape(input_shape, input_tensor, default_size)
    inputs = keras.layers.Input(shape=input_shape, name="image") if input_tensor is None else input_tensor
    return inputs, input_shape


def build_model(architecture, input_shape=None, include_top=True, weights=None, input_tensor=None,
                classes=1000, pooling=None, classifier_activation="softmax", include_preprocessing=True,
                class_names=None, name=None, keras_module="keras"):
    """Builds the classification network an ``Architecture`` describes: backbone + classifier head.

    The public builders (``MobileViTv2``, ``MobileViT``, ``create_model``) call this.
    """
    if isinstance(architecture, str):
        architecture = architectures.get_architecture(architecture)
    classes, class_names = _check_class_names(classes, class_names, 1000)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    _check_weights_argument(weights)

    layers = layers_for(keras_module)
    keras = layers.keras
    inputs, input_shape = _image_input(keras, input_shape, input_tensor, architecture.input_size)
    facts = PreprocessingConfig(
        input_size=tuple(s or architecture.input_size for s in input_shape[:2]),
        crop_fraction=architecture.crop_fraction,
        interpolation=architecture.interpolation,
        input_max=255.0 if include_preprocessing else 1.0,
        class_names=class_names if include_top else None,
        architecture=architecture.name,
    )
    x = layers.Preprocessing(**facts.layer_config(), name=PREPROCESSING_LAYER)(inputs)
    features = backbone_features(x, architecture)
    x = classifier_head(features, architecture, include_top, classes, pooling, classifier_activation,
                        logits_dtype="float32" if _mixed_precision(keras) else None)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name or architecture.name)

    if weights is not None:
        load_weights(model, weights)
    return model


def build_segmenter(name, input_shape=None, classes=None, output_stride=None, atrous_rates=None, pool_sizes=None,
                    channels=None, dropout=0.1, aux_head=False, align_corners=None, weights=None,
                    input_tensor=None, include_preprocessing=True, class_names=None, keras_module="keras",
                    model_name=None):
    """A segmentation model of the registry (``deeplabv3_mobilevitv2_050`` ...): backbone + DeepLabv3 or
    PSPNet head + bilinear upsampling of the logits to the input size.

    Every setting left None takes the registry's default for that model (the
    official PASCAL VOC configuration). The model outputs NHWC logits at the
    input's resolution; with ``aux_head`` (training) it outputs
    ``{"logits": ..., "aux_logits": ...}``, the auxiliary logits at P4's resolution.
    """
    entry = get_entry(name)
    if entry.task != "segmentation":
        raise ValueError(f"{name} is a {entry.task} model, not a segmentation model")
    defaults = dict(entry.defaults)
    architecture = architectures.get_architecture(entry.architecture)
    classes, class_names = _check_class_names(classes, class_names, None)
    settings = {"model": entry.name, "output_stride": output_stride or defaults["output_stride"],
                "channels": channels or defaults["channels"], "dropout": float(dropout),
                "align_corners": defaults["align_corners"] if align_corners is None else bool(align_corners)}
    if entry.head == "deeplabv3":
        settings["atrous_rates"] = [int(r) for r in (atrous_rates or defaults["atrous_rates"])]
    else:
        settings["pool_sizes"] = [int(p) for p in (pool_sizes or defaults["pool_sizes"])]
    classes = int(classes or defaults["classes"])
    _check_weights_argument(weights)

    layers = layers_for(keras_module)
    keras = layers.keras
    inputs, x = _dense_input(layers, architecture, input_shape, input_tensor, defaults["input_size"],
                             include_preprocessing, class_names, "segmentation", settings)
    features = backbone_features(x, architecture, settings["output_stride"])
    logits_dtype = "float32" if _mixed_precision(keras) else None
    if entry.head == "deeplabv3":
        logits = deeplabv3_head(features, classes, settings["atrous_rates"], settings["channels"], dropout,
                                logits_dtype)
    else:
        logits = pspnet_head(features, classes, settings["pool_sizes"], settings["channels"], dropout,
                             logits_dtype)
    outputs = upsample_to_input(logits, inputs, settings["align_corners"])
    if aux_head:
        outputs = {"logits": outputs, "aux_logits": heads.aux_head(features, classes, dropout, logits_dtype)}

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, outputs, name=model_name or entry.name)
    if weights is not None:
        load_weights(model, weights)
    return model


def _dense_input(layers, architecture, input_shape, input_tensor, default_size, include_preprocessing, class_names,
                 task, head):
    """``(inputs, scaled image)`` of a segmentation or detection model: the image input and the preprocessing
    layer carrying the model's facts (no centre crop: dense models see the whole image)."""
    inputs, input_shape = _image_input(layers.keras, input_shape, input_tensor, default_size)
    facts = PreprocessingConfig(
        input_size=tuple(s or default_size for s in input_shape[:2]), crop_fraction=1.0,
        interpolation=architecture.interpolation, input_max=255.0 if include_preprocessing else 1.0,
        class_names=class_names, architecture=architecture.name, task=task, head=head)
    return inputs, layers.Preprocessing(**facts.layer_config(), name=PREPROCESSING_LAYER)(inputs)


def build_detector(name, input_shape=None, classes=None, weights=None, input_tensor=None, include_preprocessing=True,
                   class_names=None, keras_module="keras", model_name=None):
    """An SSDLite detector of the registry (``ssdlite_mobilevitv2_050`` ...): backbone (P4, P5) + extra layers +
    SSDLite heads.

    ``classes``: object classes, background not counted (default COCO's 80, named
    in cvnets' order). The model outputs ``{"box_regressions": [B, A, 4],
    "class_logits": [B, A, classes + 1]}``, raw as the official forward gives
    them: (tx, ty, tw, th) per anchor of ``detection.ssd_anchors`` for the input
    size, and logits with class 0 the background. ``detection.SSDPostprocess``
    turns them into boxes (``inference_detector`` builds that model).
    """
    from .data.detection import COCO_CLASS_NAMES

    entry = get_entry(name)
    if entry.task != "detection":
        raise ValueError(f"{name} is a {entry.task} model, not a detector")
    defaults = dict(entry.defaults)
    architecture = architectures.get_architecture(entry.architecture)
    classes, class_names = _check_class_names(classes, class_names, None)
    classes = int(classes or defaults["classes"])
    if class_names is None and classes == len(COCO_CLASS_NAMES):
        class_names = COCO_CLASS_NAMES
    _check_weights_argument(weights)

    layers = layers_for(keras_module)
    keras = layers.keras
    inputs, x = _dense_input(layers, architecture, input_shape, input_tensor, defaults["input_size"],
                             include_preprocessing, class_names, "detection", {"model": entry.name})
    features = backbone_features(x, architecture)
    boxes, logits = ssdlite_head(ssdlite_feature_maps(features), classes + 1,
                                 logits_dtype="float32" if _mixed_precision(keras) else None)
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, {"box_regressions": boxes, "class_logits": logits}, name=model_name or entry.name)
    if weights is not None:
        load_weights(model, weights)
    return model


def inference_detector(model, score_threshold=0.01, iou_threshold=0.5, max_detections=200, top_k=400):
    """``model`` (a detector of this package) followed by the official post-processing: a model that outputs
    ``{"boxes": [B, max_detections, 4] normalised (x1, y1, x2, y2), "labels": [B, max_detections] class ids
    1..classes (-1 padding), "confidence": [B, max_detections], "num_detections": [B]}`` for a fixed input size."""
    from .detection import SSDPostprocess

    height, width = model.input_shape[1:3]
    if not height or not width:
        raise ValueError("the detector needs a fixed input size: its anchors depend on it (rebuild_model)")
    keras = layers_for(keras_module_name(model)).keras
    outputs = SSDPostprocess((height, width), conf_threshold=score_threshold, top_k=top_k,
                             nms_iou_threshold=iou_threshold, max_detections=max_detections,
                             architecture=get_preprocessing(model).architecture, name="postprocess")(model.output)
    return keras.Model(model.input, outputs, name=f"{model.name}_detections")


def create_backbone(name, output_stride=32, input_shape=None, include_preprocessing=True, keras_module="keras"):
    """The backbone of a zoo architecture alone: a model whose output is its feature maps by level,
    ``{"P1": ..., "P5": ...}`` (see ``backbone.feature_strides`` for their strides)."""
    architecture = architectures.get_architecture(get_entry(name).architecture)
    layers = layers_for(keras_module)
    keras = layers.keras
    inputs, input_shape = _image_input(keras, input_shape, None, architecture.input_size)
    facts = PreprocessingConfig(
        input_size=tuple(s or architecture.input_size for s in input_shape[:2]),
        crop_fraction=architecture.crop_fraction, interpolation=architecture.interpolation,
        input_max=255.0 if include_preprocessing else 1.0, architecture=architecture.name, task="backbone",
        head={"output_stride": int(output_stride)})
    x = layers.Preprocessing(**facts.layer_config(), name=PREPROCESSING_LAYER)(inputs)
    return keras.Model(inputs, backbone_features(x, architecture, output_stride),
                       name=f"{architecture.name}_backbone")


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


# ---------------------------------------------------------------------------
# The registry: every model name, its task, backbone, head and default settings.
# ---------------------------------------------------------------------------

TASKS = ("classification", "segmentation", "detection")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    architecture: str  # the backbone's zoo name
    head: str  # "classifier", "deeplabv3", "pspnet" or "ssdlite"
    defaults: tuple = ()  # (setting, value) pairs: the official configuration

    @property
    def default_settings(self):
        return dict(self.defaults)


# Official segmentation configurations (cvnets): MobileViTv2 on PASCAL VOC (OS 16, ASPP / PSP 512);
# MobileViT v1's released DeepLabv3 models (cvnets v0.1: OS 16, ASPP 256, upsampling without align_corners).
_SEGMENTATION_DEFAULTS = {
    ("mobilevitv2", "deeplabv3"): dict(classes=21, output_stride=16, atrous_rates=(6, 12, 18), channels=512,
                                       align_corners=True, input_size=512),
    ("mobilevitv2", "pspnet"): dict(classes=21, output_stride=16, pool_sizes=PSP_POOL_SIZES, channels=512,
                                    align_corners=True, input_size=512),
    ("mobilevit", "deeplabv3"): dict(classes=21, output_stride=16, atrous_rates=(6, 12, 18), channels=256,
                                     align_corners=False, input_size=512),
}


def _registry():
    entries = [ModelEntry(name, "classification", name, "classifier") for name in architectures.ARCHITECTURES]
    for (family, head), defaults in _SEGMENTATION_DEFAULTS.items():
        for architecture in architectures.ARCHITECTURES.values():
            if architecture.family == family:
                entries.append(ModelEntry(f"{head}_{architecture.name}", "segmentation", architecture.name, head,
                                          tuple(defaults.items())))
    for name in architectures.ARCHITECTURES:  # cvnets config/detection/ssd_coco: COCO, 320x320
        entries.append(ModelEntry(f"ssdlite_{name}", "detection", name, "ssdlite", (("classes", 80),
                                                                                    ("input_size", 320))))
    return {entry.name: entry for entry in entries}


REGISTRY = _registry()


def get_entry(name):
    """The registry entry of a model name; ValueError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}") from None


def list_models(task="classification"):
    """The names ``create_model`` takes for a task ("classification", "segmentation", "detection"); all for None."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
    return [name for name, entry in REGISTRY.items() if task is None or entry.task == task]


def create_model(name, **kwargs):
    """Builds a model of the registry by name (see ``list_models``).

    Classification models take the keywords of ``MobileViTv2`` (``input_shape``,
    ``classes``, ``include_top``, ...); segmentation models those of
    ``build_segmenter`` (``input_shape``, ``classes``, ``output_stride``,
    ``atrous_rates`` or ``pool_sizes``, ``aux_head``, ...).
    """
    entry = get_entry(name)
    if entry.task == "segmentation":
        return build_segmenter(name, **kwargs)
    if entry.task == "detection":
        return build_detector(name, **kwargs)
    return build_model(architectures.get_architecture(entry.architecture), **kwargs)


def model_settings(model):
    """``(name, keyword arguments)`` that rebuild ``model`` with ``create_model`` (weights aside)."""
    facts = get_preprocessing(model)
    common = dict(include_preprocessing=facts.input_max == 255.0, class_names=facts.class_names)
    if facts.task == "segmentation":
        head = dict(facts.head)
        name = head.pop("model")
        outputs = model.output if isinstance(model.output, dict) else {"logits": model.output}
        return name, dict(common, classes=outputs["logits"].shape[-1], aux_head="aux_logits" in outputs, **head)
    if facts.task == "detection":
        return facts.head["model"], dict(common, classes=model.output["class_logits"].shape[-1] - 1)
    if facts.task != "classification" or not facts.architecture:
        raise ValueError(f"model {model.name!r} does not say how it was built, so it cannot be rebuilt")
    return facts.architecture, dict(common, classes=model.output_shape[-1], classifier_activation=None)


def copy_weights(target, source, skip=()):
    """Copies the weights of ``source``'s layers into ``target``'s layers of the same names.

    Layers of ``target`` named in ``skip`` keep their weights. Raises ValueError
    listing the layers that are missing from ``source`` or differ in shape; nothing
    is copied then.
    """
    assignments, problems = [], []
    for layer in target.layers:
        if not layer.weights or layer.name in skip:
            continue
        try:
            values = source.get_layer(layer.name).get_weights()
        except ValueError:
            problems.append(f"{layer.name}: not in the source model")
            continue
        shapes = [tuple(v.shape) for v in values]
        if shapes != [tuple(w.shape) for w in layer.weights]:
            problems.append(f"{layer.name}: source {shapes}, model {[tuple(w.shape) for w in layer.weights]}")
            continue
        assignments.append((layer, values))
    if problems:
        raise ValueError("; ".join(problems[:5]) + (f"; ... ({len(problems) - 5} more)" if len(problems) > 5 else ""))
    for layer, values in assignments:
        layer.set_weights(values)


def rebuild_model(model, input_shape=None, keras_module="keras", **changes):
    """``model`` built again by the registry with its weights: at another ``input_shape``, under
    another Keras, or with ``changes`` to its settings (``aux_head=False`` for inference, ...)."""
    name, settings = model_settings(model)
    settings.update(changes)
    rebuilt = create_model(name, input_shape=input_shape, keras_module=keras_module, **settings)
    copy_weights(rebuilt, model)
    return rebuilt
