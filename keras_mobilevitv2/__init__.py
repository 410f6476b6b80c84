"""MobileViTv2 and MobileViT for Keras 3, tf_keras and TensorFlow Lite.

Importing the package registers its Keras layers, so that ``keras.saving.load_model``
reads the models it saves; the other public names load on first use.
"""

import importlib
import os
import sys

if os.path.basename(sys.argv[0]) == "mobilevitv2" and "--verbose" not in sys.argv[1:]:
    # The ``mobilevitv2`` command, whose console script imports this package first: TensorFlow's native
    # lines (CUDA probing, CPU features, the converter's log) are noise there; --verbose keeps them. They
    # are written to file descriptor 2 from C++, whatever TF_CPP_MIN_LOG_LEVEL says once Python runs, so
    # descriptor 2 goes to /dev/null and Python's own stderr (the command's messages) to a copy of it.
    sys.stderr.flush()
    _stderr = os.dup(2)
    _null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(_null, 2)
    os.close(_null)
    sys.stderr = os.fdopen(_stderr, "w", buffering=1)

from . import layers  # noqa: F401  (registers the serialisable layers with Keras)

__version__ = "0.1.0"

_EXPORTS = {
    "MobileViTv2": "models", "MobileViT": "models", "build_model": "models", "create_model": "models",
    "create_backbone": "models", "list_models": "models", "load_weights": "models", "rebuild_model": "models",
    "PreprocessingConfig": "preprocessing", "get_preprocessing": "preprocessing",
    "count_parameters": "complexity", "count_macs": "complexity",
    "load_pytorch_checkpoint": "weights", "import_checkpoint": "weights",
}
_SUBMODULES = ("architectures", "backbone", "backend", "complexity", "data", "detection", "evaluation", "files",
               "heads", "layers", "models", "preprocessing", "training", "weights")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
