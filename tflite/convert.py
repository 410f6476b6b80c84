"""Keras model -> ``.tflite``: float32, float16, dynamic range or full integer, builtin ops only."""

import collections
import contextlib
import dataclasses
import io
import os
import re

import numpy as np

from keras_mobilevitv2.files import atomic_output, check_output_path

from .metadata import add_metadata

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
IO_TYPES = ("float32", "uint8", "int8")


class ConversionError(ValueError):
    """A model that cannot be converted with builtin ops, or bad conversion inputs."""


@dataclasses.dataclass
class ConversionReport:
    path: str
    precision: str
    size_bytes: int
    ops: dict  # op name -> count
    input_details: dict
    output_details: dict

    def summary(self):
        ops = ", ".join(f"{name} x{count}" for name, count in sorted(self.ops.items()))
        return (f"{self.path}: {self.precision}, {self.size_bytes / 1e6:.2f} MB, input "
                f"{self.input_details['dtype']} {self.input_details['shape']}, output "
                f"{self.output_details['dtype']} {self.output_details['shape']}\nops: {ops}")


def load_keras_model(path):
    """A ``.keras`` model of this package, or a one-line error that says what the file is not."""
    import keras

    import keras_mobilevitv2  # noqa: F401  (registers the layers with Keras)

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file")
    if not path.endswith(".keras"):
        raise ConversionError(f"{path}: expected a .keras model file")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure to load means: not a model we can read
        raise ConversionError(f"{path}: not a loadable Keras model ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200]})") from None


def fixed_size_model(model, image_size=None):
    """The model with a batch-1 input of ``image_size`` (default: the model's own size).

    A model built for another size is rebuilt from the zoo at this size with the
    same weights: every layer of these models works at any size.
    """
    import keras

    from keras_mobilevitv2 import create_model, get_preprocessing

    facts = get_preprocessing(model)
    height, width = model.input_shape[1:3]
    if image_size is not None:
        target = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    elif height and width:
        target = (height, width)
    else:
        target = tuple(facts.input_size)
    if min(target) < 32:
        raise ConversionError(f"image size {target} is too small: these models need at least 32x32")
    if (height, width) != target:
        if not facts.architecture:
            raise ConversionError("the model does not say its architecture, so it cannot be resized")
        rebuilt = create_model(facts.architecture, input_shape=(*target, 3), classes=model.output_shape[-1],
                               class_names=facts.class_names, classifier_activation=None,
                               include_preprocessing=facts.input_max == 255.0)
        rebuilt.set_weights(model.get_weights())
        model = rebuilt
    inputs = keras.Input(batch_shape=(1, *target, 3), name="image")
    return keras.Model(inputs, model(inputs), name=model.name)


def calibration_images(data_dir, facts, size, steps=200):
    """Up to ``steps`` images of a folder, prepared as the model's evaluation prepares them.

    ``facts``: the model's ``PreprocessingConfig``; ``size``: (height, width) of its input.
    """
    import tensorflow as tf

    from keras_mobilevitv2.data import DataError, center_crop, decode_file, scan_image_folder

    data_dir = os.fspath(data_dir)
    try:
        folder = scan_image_folder(data_dir, progress=False)
    except DataError:
        folder = _flat_folder(data_dir)
    scale = facts.input_max / 255.0
    for path, native in list(zip(folder.paths, folder.native))[:steps]:
        image = center_crop(decode_file(tf.constant(path), tf.constant(native)), size, facts.crop_fraction)
        yield [image.numpy()[np.newaxis].astype(np.float32) * scale]


def _flat_folder(data_dir):
    """Images directly in ``data_dir`` (calibration needs no classes)."""
    from keras_mobilevitv2.data import DataError, ImageFolder
    from keras_mobilevitv2.data.folders import IMAGE_SUFFIXES, inspect_image

    if not os.path.isdir(data_dir):
        raise ConversionError(f"{data_dir}: no such calibration folder")
    paths, native = [], []
    for root, _, files in os.walk(data_dir):
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.lower().endswith(IMAGE_SUFFIXES):
                try:
                    native.append(inspect_image(path)[0])
                    paths.append(path)
                except Exception:  # noqa: BLE001 - unreadable files are left out of calibration
                    continue
    if not paths:
        raise ConversionError(f"{data_dir}: no readable images for calibration")
    try:
        return ImageFolder(data_dir, ("images",), tuple(paths), (0,) * len(paths), tuple(native))
    except DataError as error:
        raise ConversionError(str(error)) from None


def _unsupported_ops_message(error_text):
    """Op names and the layers they come from, out of the converter's error text."""
    found = collections.defaultdict(set)
    for line in error_text.splitlines():
        op = re.search(r"\b(tf\.[A-Za-z0-9_]+)", line)
        if op and ("not supported" in error_text or "Flex" in error_text):
            layer = re.search(r"loc\(.*?\"([^\"]+)\"", line)
            found[op.group(1)].add(layer.group(1).split("/")[1] if layer and "/" in layer.group(1) else "?")
    if not found:
        return None
    return "; ".join(f"{op} (layers: {', '.join(sorted(layers))})" for op, layers in sorted(found.items()))


def convert(model, out, precision="fp32", calibration_data=None, calibration_steps=200, io_type="float32",
            image_size=None, overwrite=False):
    """Converts a Keras model (or ``.keras`` path) to ``out`` (``.tflite``) with builtin ops only.

    Args:
        precision: ``fp32``; ``fp16`` (float16 weights); ``dynamic`` (int8 weights,
            float activations); ``int8`` (full integer, calibrated on ``calibration_data``).
        calibration_data: a folder of images (class sub-folders or not), for ``int8``.
        io_type: the input and output type of an ``int8`` model: float32, uint8 or int8.
        image_size: the size to convert at (default: the model's).
    Returns a ``ConversionReport``. The file carries the model's preprocessing
    facts (see ``metadata``); an existing ``out`` is replaced only with ``overwrite``.
    """
    import tensorflow as tf

    from keras_mobilevitv2 import get_preprocessing

    source_path = model if isinstance(model, (str, os.PathLike)) else None
    out = check_output_path(out, overwrite, suffix=".tflite", inputs=(source_path,))
    if precision not in PRECISIONS:
        raise ConversionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if io_type not in IO_TYPES:
        raise ConversionError(f"io_type must be one of {', '.join(IO_TYPES)}, got {io_type!r}")
    if io_type != "float32" and precision != "int8":
        raise ConversionError(f"--io-type {io_type} needs --precision int8")
    if precision == "int8" and calibration_data is None:
        raise ConversionError("int8 needs --calibration-data: a folder of representative images")
    if source_path is not None:
        model = load_keras_model(source_path)
    facts = get_preprocessing(model)
    model = fixed_size_model(model, image_size)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision in ("fp16", "dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        images = list(calibration_images(calibration_data, facts, tuple(model.input_shape[1:3]),
                                         calibration_steps))
        if not images:
            raise ConversionError(f"{calibration_data}: no readable images for calibration")
        converter.representative_dataset = lambda: iter(images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_type)
        converter.inference_output_type = getattr(tf, io_type)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the whole saved signature
            content = converter.convert()
    except Exception as error:  # noqa: BLE001 - reported with the ops that need more than builtins
        detail = _unsupported_ops_message(str(error))
        if detail:
            raise ConversionError(f"the model needs ops outside TFLite's builtins: {detail}") from None
        raise ConversionError(f"conversion failed: {str(error).splitlines()[0][:300]}") from None

    write_tflite(content, out, facts, model.input_shape[1:3], precision, io_type)
    return inspect_tflite(out, precision)


def write_tflite(content, out, facts, input_size, precision, io_type):
    """Writes converted ``content`` to ``out`` atomically, with the model's facts in its metadata."""
    facts_dict = facts.to_dict()
    facts_dict.update(input_size=list(input_size), precision=precision, io_type=io_type, outputs="logits")
    with atomic_output(out) as temporary:
        with open(temporary, "wb") as file:
            file.write(add_metadata(content, facts_dict))


def inspect_tflite(path, precision=None):
    """The op counts and input / output details of a ``.tflite`` file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path))
    ops = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    ops.pop("DELEGATE", None)

    def details(d):
        return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]],
                "quantization": [float(q) for q in d["quantization"]]}

    return ConversionReport(
        path=os.fspath(path), precision=precision, size_bytes=os.path.getsize(path), ops=dict(ops),
        input_details=details(interpreter.get_input_details()[0]),
        output_details=details(interpreter.get_output_details()[0]))
