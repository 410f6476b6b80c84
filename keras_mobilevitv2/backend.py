"""The one place that chooses between Keras 3 and tf_keras (Keras 2).

Every layer and model builder takes ``keras_module`` and resolves it here, so
the same code builds the network under Keras 3 (the default) and under tf_keras,
which tensorflow-model-optimization needs for quantization-aware training.
"""

import importlib
import os
import types

# Keras 3 must run on TensorFlow: the layers use TensorFlow ops, and the models
# are converted with the TFLite converter.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

KERAS_MODULES = ("keras", "tf_keras")


def get_keras(keras_module="keras"):
    """Returns the Keras package to build with: ``"keras"``, ``"tf_keras"`` or either module."""
    if isinstance(keras_module, types.ModuleType):
        keras_module = keras_module.__name__
    if keras_module not in KERAS_MODULES:
        raise ValueError(f"keras_module must be one of {KERAS_MODULES}, got {keras_module!r}")
    try:
        module = importlib.import_module(keras_module)
    except ImportError as error:
        extra = " (pip install 'keras-mobilevitv2[qat]')" if keras_module == "tf_keras" else ""
        raise ImportError(f"{keras_module} is not installed{extra}") from error
    if keras_module == "keras" and module.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"keras_mobilevitv2 needs the TensorFlow backend of Keras 3, "
            f"but KERAS_BACKEND is {module.backend.backend()!r}"
        )
    return module


def keras_module_name(model_or_layer):
    """``"keras"`` or ``"tf_keras"``: which package a model or layer was built with."""
    for cls in type(model_or_layer).__mro__:
        root = cls.__module__.split(".")[0]
        if root in KERAS_MODULES:
            return root
    raise TypeError(f"{type(model_or_layer).__name__} is not a Keras layer or model")


def inference_function(model):
    """``model`` called in inference mode as one TensorFlow graph, traced once per input shape (and relaxed
    to unknown sizes after a few): a functional model called eagerly runs op by op, which made the detection
    validation of 100 images take 35 s instead of 1.5 s."""
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)
