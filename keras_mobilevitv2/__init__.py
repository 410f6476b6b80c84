"""MobileViTv2 and MobileViT for Keras 3, tf_keras and TensorFlow Lite."""

from . import backend  # noqa: F401  (sets the TensorFlow backend before Keras is imported)
from . import architectures, layers  # noqa: F401
from .models import MobileViT, MobileViTv2, build_model, create_model, list_models, load_weights
from .preprocessing import PreprocessingConfig, get_preprocessing

__version__ = "0.1.0"

__all__ = [
    "MobileViT", "MobileViTv2", "PreprocessingConfig", "architectures", "build_model", "create_model",
    "get_preprocessing", "layers", "list_models", "load_weights",
]
