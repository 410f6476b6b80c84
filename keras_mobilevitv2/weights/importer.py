"""Loading a state dict into a model of this package, for every task, and ``import_checkpoint``.

A layer's weights are found by its name (``layouts.torch_prefix``). The backbone
of any task loads from the backbone part of any checkpoint (cvnets keeps it under
``encoder.`` in its segmentation checkpoints), so a segmentation model can start
from a classification checkpoint (``skip_head``) as the official recipe does.
"""

import os

import numpy as np

from .. import architectures
from ..files import check_output_path, save_model
from ..preprocessing import get_preprocessing
from .layouts import (backbone_prefix, checkpoint_task, detect_layout, is_backbone_layer, qkv_part, qkv_rows,
                      torch_prefix)
from .torch_zip import CheckpointError

_IGNORED_SUFFIXES = (".num_batches_tracked",)
_BACKBONE_KEYS = {"cvnets": ("conv_1.", "layer_"), "timm": ("stem.", "stages.")}
AUX_HEAD_KEYS = "seg_head.aux_head."


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that does not fit the model: missing, unexpected or mis-shaped keys."""


# Keras weight -> (checkpoint suffix, PyTorch array -> Keras array, Keras shape -> PyTorch shape).
def _conv_kernel(array):
    if array.ndim == 2:  # a linear layer ([out, in]) that runs here as a 1x1 convolution
        return array.T[None, None]
    return array.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]


def _depthwise_kernel(array):
    return array.transpose(2, 3, 0, 1)  # [channels, 1, kh, kw] -> [kh, kw, channels, 1]


def _same(array):
    return array


_VECTOR = (_same, lambda shape: shape)
_NORM_SPEC = (("weight", *_VECTOR), ("bias", *_VECTOR))
_WEIGHT_SPECS = {
    "Conv2D": (("weight", _conv_kernel, lambda s: (s[3], s[2], s[0], s[1])), ("bias", *_VECTOR)),
    "DepthwiseConv2D": (("weight", _depthwise_kernel, lambda s: (s[2], s[3], s[0], s[1])), ("bias", *_VECTOR)),
    "AtrousConv2D": (("weight", _conv_kernel, lambda s: (s[3], s[2], s[0], s[1])), ("bias", *_VECTOR)),
    "Dense": (("weight", lambda a: a.T, lambda s: (s[1], s[0])), ("bias", *_VECTOR)),
    "BatchNormalization": (("weight", *_VECTOR), ("bias", *_VECTOR),
                           ("running_mean", *_VECTOR), ("running_var", *_VECTOR)),
    "LayerNormalization": _NORM_SPEC,
    "OneGroupNorm": _NORM_SPEC,
}


def _model_family(model):
    if any(type(layer).__name__ == "SeparableAttention" for layer in model.layers):
        return "mobilevitv2"
    if any(type(layer).__name__ == "MultiHeadPatchAttention" for layer in model.layers):
        return "mobilevit"
    raise ValueError(f"model {model.name!r} is not a MobileViT or MobileViTv2 built by keras_mobilevitv2")


def _transformer_layer_counts(model):
    counts = {}
    for layer in model.layers:
        if layer.name.endswith("_attn_norm") and "_transformer" in layer.name:
            block = layer.name.split("_transformer")[0]
            counts[block] = counts.get(block, 0) + 1
    return counts


def _checkpoint_family(state):
    return "mobilevitv2" if any(("qkv_proj" in k and k.endswith("conv.weight")) or ".attn.qkv_proj." in k
                                for k in state) else "mobilevit"


def _checkpoint_head(state):
    """The dense head a cvnets checkpoint holds: "deeplabv3", "pspnet", "ssdlite" or None."""
    if any(k.startswith("seg_head.aspp.") for k in state):
        return "deeplabv3"
    if any(k.startswith("seg_head.psp_layer.") for k in state):
        return "pspnet"
    if any(k.startswith("ssd_heads.") for k in state):
        return "ssdlite"
    return None


def guess_model(state, layout):
    """The registry model whose backbone (stem and last stage widths) and head match a checkpoint, or None."""
    family, prefix = _checkpoint_family(state), backbone_prefix(state, layout)
    try:
        stem = state[f"{torch_prefix('stem_conv', layout, family, backbone_prefix=prefix)}.weight"].shape[0]
        last = state[f"{torch_prefix('layer5_0_project_conv', layout, family, backbone_prefix=prefix)}.weight"].shape[0]
    except KeyError:
        return None
    for arch in architectures.ARCHITECTURES.values():
        if arch.family == family and arch.stem_channels == stem and arch.stages[-1].channels == last:
            head = _checkpoint_head(state)
            return f"{head}_{arch.name}" if head else arch.name
    return None


def _head_naming(model, state):
    """What ``torch_prefix`` needs of a dense model's head (its task and settings), or None for a classifier."""
    facts = get_preprocessing(model)
    if facts.task == "classification":
        return None
    return dict(facts.head or {}, task=facts.task,
                legacy_classifier="seg_head.classifier.classifier.block.conv.weight" in state)


def _is_backbone_key(key, layout, prefix):
    return key.startswith(prefix) and key[len(prefix):].startswith(_BACKBONE_KEYS[layout])


def load_state_dict(model, state, path="checkpoint", skip_head=False):
    """Loads a cvnets or timm state dict (``{key: numpy array}``) into ``model``; returns the layout.

    ``skip_head``: load the backbone only and keep the model's head (a classifier
    with other classes, or a segmentation head on a classification checkpoint).
    Raises ``CheckpointMismatchError``, listing missing, unexpected and mis-shaped
    keys, when the checkpoint does not fit; nothing is loaded then.
    """
    layout = detect_layout(state)
    if layout is None:
        raise CheckpointError(
            f"{path}: neither the official (cvnets) nor the timm MobileViT layout "
            f"(first keys: {', '.join(list(state)[:5])})")
    prefix = backbone_prefix(state, layout)
    family = _model_family(model)
    head = _head_naming(model, state)
    dense = head is not None
    layer_counts = _transformer_layer_counts(model)
    has_aux = any(layer.name == "aux_classifier" for layer in model.layers)

    def skipped(layer_name):
        return skip_head and (not is_backbone_layer(layer_name) if dense else layer_name == "predictions")

    assignments, missing, mismatched, used = [], [], [], set()
    for layer in model.layers:
        if not layer.weights or skipped(layer.name):
            continue
        specs = _WEIGHT_SPECS.get(type(layer).__name__)
        if specs is None:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) has weights this importer does not know")
        try:
            key_prefix = torch_prefix(layer.name, layout, family, layer_counts.get(layer.name.rsplit("_", 1)[0]),
                                      prefix, head)
        except KeyError:
            raise CheckpointError(f"{path}: the {layout} layout has no weights for layer {layer.name} "
                                  f"of {model.name!r}") from None
        part = qkv_part(layer.name)
        values = []
        for (suffix, transform, torch_shape), weight in zip(specs, layer.weights):
            key = f"{key_prefix}.{suffix}"
            if key not in state:
                missing.append(key)
                continue
            used.add(key)
            value = transform(state[key])
            if part is not None:
                value = qkv_rows(value, part)
            if tuple(value.shape) != tuple(weight.shape):
                share = "" if part is None else f" ({layer.name.rsplit('_', 1)[1]} rows)"
                mismatched.append(f"{key}{share}: checkpoint {tuple(state[key].shape)}, model "
                                  f"{tuple(torch_shape(tuple(weight.shape)))}")
                continue
            values.append(value.astype(np.float32))
        assignments.append((layer, values))

    def ignored(key):
        if key.endswith(_IGNORED_SUFFIXES) or (key.startswith(AUX_HEAD_KEYS) and not has_aux):
            return True  # the auxiliary head trains only; a model built without it leaves it out
        return skip_head and not _is_backbone_key(key, layout, prefix)

    head_prefix = torch_prefix("predictions", layout, family)
    unexpected = [k for k in state if k not in used and not ignored(k)]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(_mismatch_message(
            model, state, path, layout, missing, unexpected, mismatched, head_prefix, dense))
    for layer, values in assignments:
        layer.set_weights(values)
    return layout


def _mismatch_message(model, state, path, layout, missing, unexpected, mismatched, head_prefix, dense):
    lines = [f"{path} ({layout} layout) does not fit model {model.name!r}:"]
    task, model_task = checkpoint_task(state), get_preprocessing(model).task
    classifier_keys = (head_prefix + ".",) if not dense else ("seg_head.classifier.", "seg_head.aux_head.2.",
                                                              "ssd_heads.")
    head_only = all(k.startswith(classifier_keys) for k in missing + unexpected + mismatched)
    if task != model_task:
        lines.append(f"  the checkpoint holds a {task} model and {model.name!r} is a {model_task} model: load its "
                     "backbone only with skip_head=True (--init-from), or build the checkpoint's kind of model")
    elif head_only and mismatched:
        lines.append(f"  the checkpoint's classifier has {_class_count(state, path, model_task, head_prefix)} "
                     f"classes and the model's {_model_class_count(model, model_task)}: load with skip_head=True "
                     "(--skip-head) to keep a freshly initialised head")
    else:
        guess = guess_model(state, layout)
        if guess and guess != model.name:
            lines.append(f"  the checkpoint looks like {guess}: build that model (--model {guess})")
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            shown = "; ".join(keys[:4]) + (f"; ... ({len(keys) - 4} more)" if len(keys) > 4 else "")
            lines.append(f"  {title} ({len(keys)}): {shown}")
    return "\n".join(lines)


def _class_count(state, path, task, head_prefix):
    """The classes of a checkpoint's head (background not counted for detection)."""
    if task == "detection":
        return detection_classes(state, path)
    if task == "segmentation":
        return segmentation_settings(state, path, _checkpoint_family(state))["classes"]
    return int(state[f"{head_prefix}.bias"].shape[0])


def _model_class_count(model, task):
    """The classes a model predicts (background not counted for detection)."""
    outputs = model.output
    if task == "detection":
        return int(outputs["class_logits"].shape[-1]) - 1
    return int((outputs["logits"] if isinstance(outputs, dict) else outputs).shape[-1])


def load_pytorch_checkpoint(model, path, skip_head=False, prefer_ema=True):
    """Loads an official (cvnets) or timm checkpoint into a model built by this package.

    Args:
        model: a model of the registry whose backbone matches (Keras 3 or tf_keras).
        path: ``.pt``, ``.pth``, ``.bin`` (``torch.save`` zip) or ``.safetensors``.
        skip_head: load the backbone only (a classifier with other ``classes``, or a
            dense model started from a classification checkpoint).
        prefer_ema: when the file holds both, load the EMA weights.

    Returns: the detected layout, ``"cvnets"`` or ``"timm"``.
    Raises ``CheckpointError`` for an unreadable file and ``CheckpointMismatchError``,
    listing missing, unexpected and mis-shaped keys, for one that does not fit.
    Nothing is loaded unless everything fits.
    """
    from . import read_checkpoint

    path = os.fspath(path)
    return load_state_dict(model, read_checkpoint(path, prefer_ema), path, skip_head)


def read_labels(path):
    """Class names from a text file (one per line) or a JSON list."""
    import json

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise ValueError(f"{path}: cannot read labels: {error.strerror}") from None
    if path.endswith(".json"):
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{path}: the JSON must be a list of class names")
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise ValueError(f"{path}: no class names")
    return labels


# The official segmentation configurations, by (family, classes): ADE20k's 150 classes at output stride 8,
# PASCAL VOC's 21 at 16 (cvnets config/segmentation/*); MobileViT v1's current checkpoint at 8.
_SEGMENTATION_CONFIGS = {
    ("mobilevitv2", 150): dict(output_stride=8, atrous_rates=(12, 24, 36)),
    ("mobilevitv2", 21): dict(output_stride=16, atrous_rates=(6, 12, 18)),
    ("mobilevit", 21): dict(output_stride=8, atrous_rates=(12, 24, 36)),
}


def segmentation_settings(state, path, family):
    """``create_model`` settings of an official segmentation checkpoint: classes and head width from its
    tensors, output stride and atrous rates from the official configuration of its dataset."""
    legacy = "seg_head.classifier.classifier.block.conv.weight" in state
    classifier = "seg_head.classifier.classifier.block.conv" if legacy else "seg_head.classifier.block.conv"
    try:
        classes, channels = state[f"{classifier}.weight"].shape[:2]
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: a segmentation checkpoint without its classifier ({classifier}.weight)") \
            from None
    settings = dict(classes=int(classes), channels=int(channels), aux_head=any(k.startswith(AUX_HEAD_KEYS)
                                                                                for k in state))
    if legacy:  # cvnets v0.1 (MobileViT v1's released DeepLabv3): stride 16, no align_corners
        settings.update(output_stride=16, atrous_rates=(6, 12, 18), align_corners=False)
    else:
        config = _SEGMENTATION_CONFIGS.get((family, int(classes)), _SEGMENTATION_CONFIGS[("mobilevitv2", 21)])
        settings.update(config, align_corners=True)
    return settings


def detection_classes(state, path):
    """The object classes of an official SSDLite checkpoint (background not counted), from its last head."""
    from ..detection.anchors import anchors_per_location
    from ..heads.ssdlite import BOX_CODES

    heads = [k for k in state if k.startswith("ssd_heads.") and k.endswith(".bias")]
    try:
        last = max(heads, key=lambda k: int(k.split(".")[1]))
        values = state[last].shape[0] // anchors_per_location()[int(last.split(".")[1])]
    except (ValueError, IndexError):
        raise CheckpointError(f"{path}: a detection checkpoint without SSD heads (ssd_heads.*.bias)") from None
    return int(values - BOX_CODES - 1)


def import_checkpoint(checkpoint, model_name, out, image_size=None, classes=None, skip_head=False,
                      labels=None, overwrite=False, prefer_ema=True, output_stride=None, atrous_rates=None):
    """Builds ``model_name``, loads ``checkpoint`` into it and saves ``out`` (``.keras``).

    The saved model takes RGB in [0, 255] (it scales inside), outputs logits and
    carries its preprocessing facts and, from ``labels`` (a file), its class names.
    ``image_size``: an int or (height, width); the task's official size by default
    (256 for classifiers, 512 for segmentation, 320 for detection). A detector
    takes its classes from the checkpoint (COCO's 80 names when there are 80,
    else ``labels``). A segmentation model takes its
    classes and head width from the checkpoint, keeps its auxiliary head (for
    fine-tuning), and has the output stride and atrous rates of the official
    configuration of its dataset unless ``output_stride`` / ``atrous_rates`` say
    otherwise. Returns the model.
    """
    from . import read_checkpoint
    from ..models import create_model, get_entry

    check_output_path(out, overwrite, suffix=".keras", inputs=(checkpoint,))
    entry = get_entry(model_name)
    class_names = read_labels(labels) if labels else None
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    input_shape = None if image_size is None else (*image_size, 3)
    state = read_checkpoint(checkpoint, prefer_ema)
    if entry.task == "detection":
        if classes is None and class_names:
            classes = len(class_names)
        if classes is None and checkpoint_task(state) == "detection":
            classes = detection_classes(state, checkpoint)
        model = create_model(model_name, input_shape=input_shape, classes=classes, class_names=class_names)
    elif entry.task == "segmentation":
        layout = detect_layout(state)
        settings = {} if layout is None or checkpoint_task(state) != "segmentation" \
            else segmentation_settings(state, checkpoint, _checkpoint_family(state))
        if classes is not None:
            settings["classes"] = classes
        elif class_names:
            settings["classes"] = len(class_names)
        settings.update({k: v for k, v in (("output_stride", output_stride), ("atrous_rates", atrous_rates))
                         if v is not None})
        if entry.head != "deeplabv3":
            settings.pop("atrous_rates", None)
        model = create_model(model_name, input_shape=input_shape, class_names=class_names, **settings)
    else:
        if classes is None:
            classes = len(class_names) if class_names else 1000
        if classes != 1000 and not skip_head:
            raise ValueError(f"the official checkpoints have 1000 classes; for {classes} pass --skip-head")
        model = create_model(model_name, input_shape=input_shape, classes=classes, class_names=class_names,
                             classifier_activation=None, include_preprocessing=True)
    load_state_dict(model, state, os.fspath(checkpoint), skip_head=skip_head)
    save_model(model, out, overwrite=overwrite)
    return model
