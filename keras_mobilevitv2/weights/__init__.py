"""Import of the official (apple/ml-cvnets) and timm checkpoints, without PyTorch.

``load_pytorch_checkpoint(model, path)`` fills a model of this package with the
weights of a ``.pt`` / ``.pth`` / ``.bin`` (``torch.save`` zip) or ``.safetensors``
file; ``import_checkpoint`` builds the model, loads and saves a ``.keras`` file.
"""

import json
import os

import numpy as np

from .. import architectures
from ..files import check_output_path, save_model
from .layouts import detect_layout, qkv_part, qkv_rows, torch_prefix
from .safetensors_file import read_safetensors
from .torch_zip import CheckpointError, read_torch_zip

__all__ = [
    "CheckpointError", "CheckpointMismatchError", "import_checkpoint", "load_pytorch_checkpoint",
    "read_checkpoint", "read_labels",
]

# Wrappers seen around state dicts, EMA copies first (timm's default is to load the EMA weights).
_EMA_KEYS = ("state_dict_ema", "model_ema", "ema_state_dict", "ema")
_MODEL_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
_PREFIXES = ("module.", "_orig_mod.", "model.")
_IGNORED_SUFFIXES = (".num_batches_tracked",)


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that does not fit the model: missing, unexpected or mis-shaped keys."""


def _is_state_dict(obj):
    return isinstance(obj, dict) and obj and any(isinstance(v, np.ndarray) for v in obj.values())


def extract_state_dict(obj, path="checkpoint", prefer_ema=True):
    """The ``{key: array}`` state dict inside a checkpoint object, unwrapped and de-prefixed."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    if not _is_state_dict(obj):
        for key in (_EMA_KEYS + _MODEL_KEYS) if prefer_ema else (_MODEL_KEYS + _EMA_KEYS):
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        else:
            shown = [k if isinstance(k, str) and len(k) <= 40 and k.isprintable() else
                     repr(k[:40]) if isinstance(k, str) else f"a {type(k).__name__}" for k in list(obj)[:10]]
            raise CheckpointError(f"{path}: no state dict found (top-level keys: {', '.join(shown)})")
    state = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            if not isinstance(key, str):  # names only: str() of a key from the file could be anything
                raise CheckpointError(f"{path}: a tensor is filed under a {type(key).__name__}, not a name")
            state[key] = value
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_checkpoint(path, prefer_ema=True):
    """The state dict of a PyTorch zip checkpoint or a safetensors file, as numpy arrays."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            size = os.fstat(file.fileno()).st_size
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read: {error.strerror}") from None
    if path.endswith(".safetensors"):
        return extract_state_dict(read_safetensors(path), path, prefer_ema)
    if head[:2] == b"PK":
        return extract_state_dict(read_torch_zip(path), path, prefer_ema)
    if head[:1] == b"\x80":
        raise CheckpointError(
            f"{path}: a pickle in PyTorch's legacy (pre-1.6) format; re-save it with "
            "torch.save(torch.load(path), new_path) in a PyTorch >= 1.6 environment")
    if len(head) >= 8 and int.from_bytes(head, "little") < size:
        return extract_state_dict(read_safetensors(path), path, prefer_ema)
    raise CheckpointError(f"{path}: not a PyTorch checkpoint or safetensors file")


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


def _guess_model(state, layout):
    """The zoo model whose stem and last stage widths match a checkpoint, or None."""
    family = "mobilevitv2" if any("qkv_proj" in k and k.endswith("conv.weight") or ".attn.qkv_proj." in k
                                  for k in state) else "mobilevit"
    try:
        stem = state[f"{torch_prefix('stem_conv', layout, family)}.weight"].shape[0]
        last = state[f"{torch_prefix('layer5_0_project_conv', layout, family)}.weight"].shape[0]
    except KeyError:
        return None
    for arch in architectures.ARCHITECTURES.values():
        if arch.family == family and arch.stem_channels == stem and arch.stages[-1].channels == last:
            return arch.name
    return None


def load_pytorch_checkpoint(model, path, skip_head=False, prefer_ema=True):
    """Loads an official (cvnets) or timm checkpoint into a model built by this package.

    Args:
        model: a MobileViT / MobileViTv2 of the matching size (Keras 3 or tf_keras).
        path: ``.pt``, ``.pth``, ``.bin`` (``torch.save`` zip) or ``.safetensors``.
        skip_head: leave the classifier as it is (for a model with other ``classes``).
        prefer_ema: when the file holds both, load the EMA weights.

    Returns: the detected layout, ``"cvnets"`` or ``"timm"``.
    Raises ``CheckpointError`` for an unreadable file and ``CheckpointMismatchError``,
    listing missing, unexpected and mis-shaped keys, for one that does not fit.
    Nothing is loaded unless everything fits.
    """
    path = os.fspath(path)
    state = read_checkpoint(path, prefer_ema)
    layout = detect_layout(state)
    if layout is None:
        raise CheckpointError(
            f"{path}: neither the official (cvnets) nor the timm MobileViT layout "
            f"(first keys: {', '.join(list(state)[:5])})")
    family = _model_family(model)
    layer_counts = _transformer_layer_counts(model)

    assignments, missing, mismatched, used = [], [], [], set()
    head_prefix = torch_prefix("predictions", layout, family)
    for layer in model.layers:
        if not layer.weights or (skip_head and layer.name == "predictions"):
            continue
        specs = _WEIGHT_SPECS.get(type(layer).__name__)
        if specs is None:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) has weights this importer does not know")
        prefix = torch_prefix(layer.name, layout, family, layer_counts.get(layer.name.rsplit("_", 1)[0]))
        part = qkv_part(layer.name)
        values = []
        for (suffix, transform, torch_shape), weight in zip(specs, layer.weights):
            key = f"{prefix}.{suffix}"
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

    unexpected = [k for k in state if k not in used and not k.endswith(_IGNORED_SUFFIXES)
                  and not (skip_head and k.startswith(head_prefix + "."))]

    if missing or unexpected or mismatched:
        head_only = all(k.startswith(head_prefix + ".") for k in missing + unexpected) and all(
            m.startswith(head_prefix + ".") for m in mismatched)
        lines = [f"{path} ({layout} layout) does not fit model {model.name!r}:"]
        if head_only and mismatched:
            classes = state[f"{head_prefix}.bias"].shape[0]
            lines.append(f"  the checkpoint's classifier has {classes} classes and the model's "
                         f"{model.get_layer('predictions').units}: load with skip_head=True (--skip-head) "
                         "to keep a freshly initialised head")
        else:
            guess = _guess_model(state, layout)
            if guess and guess != model.name:
                lines.append(f"  the checkpoint looks like {guess}: build that model (--model {guess})")
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                shown = "; ".join(keys[:4]) + (f"; ... ({len(keys) - 4} more)" if len(keys) > 4 else "")
                lines.append(f"  {title} ({len(keys)}): {shown}")
        raise CheckpointMismatchError("\n".join(lines))

    for layer, values in assignments:
        layer.set_weights(values)
    return layout


def read_labels(path):
    """Class names from a text file (one per line) or a JSON list."""
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


def import_checkpoint(checkpoint, model_name, out, image_size=256, classes=None, skip_head=False,
                      labels=None, overwrite=False, prefer_ema=True):
    """Builds ``model_name``, loads ``checkpoint`` into it and saves ``out`` (``.keras``).

    The saved model takes RGB in [0, 255] (it scales inside), outputs logits and
    carries its preprocessing facts and, from ``labels`` (a file), its class names.
    Returns the model.
    """
    from ..models import create_model

    check_output_path(out, overwrite, suffix=".keras", inputs=(checkpoint,))
    architectures.get_architecture(model_name)
    class_names = read_labels(labels) if labels else None
    if classes is None:
        classes = len(class_names) if class_names else 1000
    if classes != 1000 and not skip_head:
        raise ValueError(f"the official checkpoints have 1000 classes; for {classes} pass --skip-head")
    if image_size is not None:
        image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    input_shape = None if image_size is None else (*image_size, 3)
    model = create_model(model_name, input_shape=input_shape, classes=classes, class_names=class_names,
                         classifier_activation=None, include_preprocessing=True)
    load_pytorch_checkpoint(model, checkpoint, skip_head=skip_head, prefer_ema=prefer_ema)
    save_model(model, out, overwrite=overwrite)
    return model

