"""Import of the official (apple/ml-cvnets) and timm checkpoints, without PyTorch.

``read_checkpoint(path)`` reads a ``.pt`` / ``.pth`` / ``.bin`` (``torch.save``
zip) or ``.safetensors`` file into numpy arrays without running anything in it;
``load_pytorch_checkpoint(model, path)`` (``importer``) fills a model of this
package with its weights; ``import_checkpoint`` builds the model, loads and
saves a ``.keras`` file.
"""

import os

import numpy as np

from .importer import (CheckpointMismatchError, guess_model, import_checkpoint, load_pytorch_checkpoint,
                       load_state_dict, read_labels)
from .safetensors_file import read_safetensors
from .torch_zip import CheckpointError, read_torch_zip

__all__ = [
    "CheckpointError", "CheckpointMismatchError", "guess_model", "import_checkpoint", "load_pytorch_checkpoint",
    "load_state_dict", "read_checkpoint", "read_labels",
]

# Wrappers seen around state dicts, EMA copies first (timm's default is to load the EMA weights).
_EMA_KEYS = ("state_dict_ema", "model_ema", "ema_state_dict", "ema")
_MODEL_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
_PREFIXES = ("module.", "_orig_mod.", "model.")

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

