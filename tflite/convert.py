"""Keras model -> ``.tflite``: float32, float16, dynamic range or full integer, builtin ops only."""

import collections
import contextlib
import dataclasses
import io
import os
import re

import numpy as np

from keras_mobilevitv2.files import atomic_output, check_output_path

from .float_islands import float_islands_in_quantized
from .graph import GraphRewrites, check_strips, rewrite_for_conversion
from .metadata import add_metadata

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
IO_TYPES = ("float32", "uint8", "int8")
# What a converted model outputs, by task; the first is the default. A classifier's probabilities, as MediaPipe
# Tasks shows a file's scores as they are; a detector's final detections (post-processing in the file).
# A segmenter's: logits at the head's resolution (stride 8 or 16; readers resize them to the image, as cvnets'
# evaluation does, and so does MediaPipe's ImageSegmenter), at the input size, or the category mask (ARG_MAX).
# benchmarks/segmentation_export.py chose the default: as fast as any and as accurate, 256x less to read.
OUTPUTS = {"classification": ("probabilities", "logits"), "detection": ("detections", "raw"),
           "segmentation": ("head-logits", "logits", "mask")}
CLASSIFIER_OUTPUTS = OUTPUTS["classification"]


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
    xnnpack: "DelegationReport"
    rewrites: GraphRewrites = dataclasses.field(default_factory=GraphRewrites)
    outputs: dict = dataclasses.field(default_factory=dict)  # signature output name -> details, when several
    float_ops: dict = dataclasses.field(default_factory=dict)  # int8 files: op name -> count of ops run in float

    @property
    def custom_ops(self):
        """Ops outside TFLite's builtins (a converted file holds at most the detection post-processing)."""
        return sorted(op for op in self.ops if not op.isupper() or op.startswith(("FLEX", "CUSTOM")))

    def summary(self):
        ops = ", ".join(f"{name} x{count}" for name, count in sorted(self.ops.items()))
        if len(self.outputs) > 1:
            outputs = "outputs " + ", ".join(f"{name} {d['dtype']} {d['shape']}" for name, d in self.outputs.items())
        else:
            outputs = f"output {self.output_details['dtype']} {self.output_details['shape']}"
        head = (f"{self.path}: {self.precision}, {self.size_bytes / 1e6:.2f} MB, input "
                f"{self.input_details['dtype']} {self.input_details['shape']}, {outputs}")
        custom = ""
        if self.custom_ops:
            custom = (f"custom op: {', '.join(self.custom_ops)} (LiteRT's default op resolver registers it; "
                      "every other op is a builtin)")
        islands = ""
        if self.float_ops:
            islands = ("float islands (no int8 kernel in XNNPACK; run in float between QUANTIZE and DEQUANTIZE): "
                       + ", ".join(f"{name} x{count}" for name, count in sorted(self.float_ops.items())))
        return "\n".join(line for line in (head, self.rewrites.summary(), f"ops: {ops}", custom, islands,
                                            self.xnnpack.summary()) if line)


@dataclasses.dataclass
class DelegationReport:
    """What the XNNPACK delegate takes of a model: ops left to TFLite's own kernels, and partitions.

    Every op XNNPACK does not take splits the graph: the delegate then runs in
    ``partitions`` pieces with TFLite kernels between them.
    """
    total_ops: int
    partitions: int
    not_delegated: dict  # op name -> count

    def summary(self):
        if not self.not_delegated:
            return f"XNNPACK: all {self.total_ops} ops delegated, {self.partitions} partition(s)"
        left = ", ".join(f"{name} x{count}" for name, count in sorted(self.not_delegated.items()))
        return (f"XNNPACK: {self.partitions} partition{'s' if self.partitions != 1 else ''}; not delegated "
                f"({sum(self.not_delegated.values())} of {self.total_ops} ops): {left}")


def xnnpack_delegation(path):
    """Which ops of a ``.tflite`` file the XNNPACK delegate leaves to TFLite, read from the delegated graph.

    After delegation the interpreter holds the original nodes and one DELEGATE
    node per partition. A node was delegated when it writes a partition's output;
    it was not when its output is a partition's input, a graph output, or is read
    by a node that was not delegated (going backwards from the outputs).
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path), num_threads=1)
    interpreter.allocate_tensors()
    graph = interpreter._interpreter  # noqa: SLF001 - the node list is not in the public API
    nodes = [(graph.NodeName(i), set(map(int, graph.NodeInputs(i))), set(map(int, graph.NodeOutputs(i))))
             for i in range(graph.NumNodes())]
    partitions = [node for node in nodes if node[0] == "DELEGATE"]
    original = [node for node in nodes if node[0] != "DELEGATE"]
    written_by_delegate = set().union(*(outputs for _, _, outputs in partitions))
    read_outside_delegate = set(map(int, graph.OutputIndices())).union(
        *(inputs for _, inputs, _ in partitions))
    left = collections.Counter()
    for name, inputs, outputs in reversed(original):
        if outputs & written_by_delegate:
            continue
        if not partitions or outputs & read_outside_delegate:
            left[name] += 1
            read_outside_delegate |= inputs
    return DelegationReport(total_ops=len(original), partitions=len(partitions), not_delegated=dict(left))


def load_keras_model(path):
    """A ``.keras`` model of this package, or a one-line error that says what the file is not.

    A QAT run directory (``mobilevitv2 qat``) gives its fine-tuned fake-quantized model.
    """
    import keras

    import keras_mobilevitv2  # noqa: F401  (registers the layers with Keras)

    from .qat import is_quantization_aware_run, load_quantization_aware_model

    path = os.fspath(path)
    if os.path.isdir(path):
        if is_quantization_aware_run(path):
            return load_quantization_aware_model(path)
        raise ConversionError(f"{path}: a folder, but not a QAT run directory (no qat_run.json)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file")
    if not path.endswith(".keras"):
        raise ConversionError(f"{path}: expected a .keras model file")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure to load means: not a model we can read
        raise ConversionError(f"{path}: not a loadable Keras model ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200]})") from None


def classifier_output_kind(model):
    """"probabilities" for a classifier that ends in a softmax (``create_model``'s default
    ``classifier_activation``, or the softmax ``convert`` appends), else "logits"."""
    last = model.layers[-1]
    while hasattr(last, "layers") and last.layers:  # a model wrapped in another (batch_one_model)
        last = last.layers[-1]
    if type(last).__name__ == "Softmax":
        return "probabilities"
    activation = getattr(getattr(last, "layer", last), "activation", None)  # tfmot wraps layers
    return "probabilities" if getattr(activation, "__name__", "") == "softmax" else "logits"


def batch_one_model(model, size, softmax=False):
    """``model`` behind a batch-1 input of ``size`` ((height, width)): the fixed shapes TFLite files have;
    ``softmax``: with a softmax after its output."""
    from keras_mobilevitv2.backend import get_keras, keras_module_name

    keras = get_keras(keras_module_name(model))
    inputs = keras.Input(batch_shape=(1, *size, 3), name="image")
    outputs = model(inputs)
    if softmax:
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    return keras.Model(inputs, outputs, name=model.name)


def fixed_size_model(model, image_size=None, precision="fp32", strips="auto", outputs=None, postprocessing=None):
    """The graph ``convert`` converts: the model with a batch-1 input of ``image_size`` (default: its own),
    and the ``outputs`` of ``OUTPUTS`` for its task (a classifier's probabilities or logits whatever it ends in;
    a detector's final detections, by ``postprocessing``, a ``DetectionPostprocessing``, or raw outputs).

    A model built for another size, or with training-only outputs (a segmentation
    model's auxiliary head), is rebuilt by the registry at this size with the same
    weights: every layer of these models works at any size. A quantization-aware
    model converts at the size it was fine-tuned at. A Keras 3 model's graph is
    rewritten for ``precision`` (``graph.rewrite_for_conversion``: 1x1
    convolutions fused, large inputs' first stages in ``strips`` row strips; the
    same function with less work). Returns ``(model, GraphRewrites)``.
    """
    from keras_mobilevitv2 import get_preprocessing
    from keras_mobilevitv2.backend import get_keras, keras_module_name
    from keras_mobilevitv2.models import rebuild_model

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
    training_outputs = facts.task == "segmentation" and isinstance(model.output, dict)  # the auxiliary head
    kind = classifier_output_kind(model) if facts.task == "classification" else None
    outputs = check_outputs(facts.task, outputs)
    if postprocessing is not None and outputs != "detections":
        raise ConversionError("the score threshold, IoU threshold and max detections set a detector's "
                              "post-processing in the file (--outputs detections)")
    drop_softmax = kind == "probabilities" and outputs == "logits"
    if (height, width) != target or training_outputs or drop_softmax:
        if is_quantization_aware(model):
            raise ConversionError(f"a quantization-aware model converts at the size it was fine-tuned at, "
                                  f"{height}x{width}, not {target[0]}x{target[1]}")
        try:
            model = rebuild_model(model, input_shape=(*target, 3),
                                  **({"aux_head": False} if facts.task == "segmentation" else {}))
        except ValueError as error:
            raise ConversionError(f"cannot rebuild the model at {target[0]}x{target[1]}: {error}") from None
        kind = classifier_output_kind(model) if kind else None  # rebuilt classifiers output logits
    if outputs == "head-logits":
        keras = get_keras(keras_module_name(model))
        # (tfmot names a fake-quantized model's layers quant_<name>)
        names = {layer.name for layer in model.layers}
        classifier = "seg_classifier" if "seg_classifier" in names else "quant_seg_classifier"
        model = keras.Model(model.input, model.get_layer(classifier).output, name=model.name)
    rewrites = GraphRewrites()
    if keras_module_name(model) == "keras" and not is_quantization_aware(model):
        try:
            model, rewrites = rewrite_for_conversion(model, precision, strips)
        except ValueError as error:
            raise ConversionError(str(error)) from None
    fixed = batch_one_model(model, target, softmax=kind == "logits" and outputs == "probabilities")
    if outputs == "mask":
        keras = get_keras(keras_module_name(fixed))
        fixed = keras.Model(fixed.input, _category_mask_layer(keras)(fixed.output), name=fixed.name)
    if outputs == "raw" and keras_module_name(fixed) == "tf_keras":
        fixed = named_outputs(fixed, fixed.output)
    if outputs == "detections":
        from keras_mobilevitv2.detection import ssd_anchors

        from .detection_postprocess import DetectionPostprocessing, with_postprocessing

        anchors = ssd_anchors(*target, architecture=facts.architecture)
        fixed = with_postprocessing(fixed, anchors, postprocessing or DetectionPostprocessing())
    return fixed, rewrites


def named_outputs(model, outputs):
    """``model`` with the dict ``outputs`` named by their keys in the converted file's signature. tf_keras names a
    model's outputs by the layers writing them (a fake-quantized model's are quant_<name>): an identity layer of
    each key's name, which the converter drops, gives the file the names its readers look up."""
    from keras_mobilevitv2.backend import get_keras, keras_module_name

    keras = get_keras(keras_module_name(model))
    named = {name: keras.layers.Activation("linear", name=name)(tensor) for name, tensor in outputs.items()}
    return keras.Model(model.input, named, name=model.name)


def _category_mask_layer(keras):
    """A layer giving the argmax over the classes as int32 (one ARG_MAX op; keras.ops.argmax adds a Flex op)."""
    import tensorflow as tf

    class CategoryMask(keras.layers.Layer):
        def call(self, logits):
            return tf.math.argmax(logits, axis=-1, output_type=tf.int32)

    return CategoryMask(name="category_mask")


def check_outputs(task, outputs):
    """What a converted model of ``task`` outputs: one of ``OUTPUTS[task]``, by default the first."""
    task = task or "classification"
    if outputs is None:
        return OUTPUTS[task][0]
    if outputs not in OUTPUTS[task]:
        raise ConversionError(f"a {task} model outputs {' or '.join(OUTPUTS[task])}, not {outputs!r}")
    return outputs


def is_quantization_aware(model):
    """True for a model with tfmot's fake-quantization wrappers, in it or in a model inside it (as
    ``fixed_size_model`` wraps it)."""
    return any(type(layer).__name__.startswith("QuantizeWrapper")
               or (hasattr(layer, "layers") and is_quantization_aware(layer)) for layer in model.layers)


def calibration_images(data_dir, facts, size, steps=200):
    """Up to ``steps`` images of a folder, spread evenly over it, prepared as the model's file is fed: a
    classifier's as its evaluation does (cover and centre crop), a segmenter's and a detector's resized whole
    to the input size, as the readers of their files do (``runtime.TFLiteSegmenter``, ``TFLiteDetector``).

    ``facts``: the model's ``PreprocessingConfig``; ``size``: (height, width) of its input.
    """
    import tensorflow as tf

    from keras_mobilevitv2.data import DataError, center_crop, decode_file, resize_image, scan_image_folder

    data_dir = os.fspath(data_dir)
    try:
        folder = scan_image_folder(data_dir, progress=False)
    except DataError:
        folder = _flat_folder(data_dir)
    scale = facts.input_max / 255.0
    if steps < len(folder):  # spread over the folder, so over every class, not its first classes
        folder = folder.subset(np.unique(np.linspace(0, len(folder) - 1, steps).round().astype(int)))
    for path, native in zip(folder.paths, folder.native):
        image = decode_file(tf.constant(path), tf.constant(native))
        if facts.task == "classification":
            image = center_crop(image, size, facts.crop_fraction, facts.interpolation)
        else:
            image = resize_image(image, list(size), facts.interpolation)
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
            image_size=None, strips="auto", outputs=None, postprocessing=None, float_islands=True, overwrite=False):
    """Converts a Keras model (a ``.keras`` path, or a QAT run directory) to ``out`` (``.tflite``), builtin ops only.

    Args:
        precision: ``fp32``; ``fp16`` (float16 weights); ``dynamic`` (int8 weights,
            float activations); ``int8`` (full integer, calibrated on ``calibration_data``).
        calibration_data: a folder of images (class sub-folders or not), for ``int8``.
        io_type: the input and output type of an ``int8`` model: float32, uint8 or int8.
        image_size: the size to convert at (default: the model's).
        strips: row strips for the stages before the first attention block:
            ``"auto"`` (by feature-map size: none at 256x256, 8 at 1024x1024 for
            ``mobilevitv2_050``; none for int8) or a number (1: none).
        outputs: a classifier's output, ``probabilities`` (default: a softmax is
            appended to a model that outputs logits, as trained and imported ones do)
            or ``logits``; recorded in the file's facts, so no reader applies a
            softmax twice. A detector's: ``detections`` (default: the
            post-processing in the file, ``detection_postprocess``) or ``raw``
            (box regressions and class logits). A segmenter's: ``head-logits``
            at the head's resolution (default; the readers resize them),
            ``logits`` at the input size or ``mask`` (the category of every pixel).
        postprocessing: a ``DetectionPostprocessing`` (score and IoU thresholds,
            max detections, NMS) for ``detections``; default the Keras model's.
        float_islands: for ``int8`` (post-training or QAT), keep the ops XNNPACK
            has no int8 kernel for in float inside the file (``float_islands``),
            so that XNNPACK runs the whole graph; ``False``: every op in int8, for
            integer-only accelerators.
    Returns a ``ConversionReport``. The file carries the model's preprocessing
    facts (see ``metadata``); an existing ``out`` is replaced only with ``overwrite``.
    The converted graph has adjacent 1x1 convolutions fused and, for large
    inputs, its first stages in row strips that fit in the cache (``graph``): the
    same function with less work; the report says what was rewritten.
    """
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
    try:
        check_strips(strips)
    except ValueError as error:
        raise ConversionError(str(error)) from None
    if source_path is not None:
        model = load_keras_model(source_path)
    facts = get_preprocessing(model)
    quantization_aware = is_quantization_aware(model)
    object_classes = int(model.output["class_logits"].shape[-1]) - 1 if facts.task == "detection" else None
    model, rewrites = fixed_size_model(model, image_size, precision, strips, outputs, postprocessing)

    images = None
    if precision == "int8":
        images = list(calibration_images(calibration_data, facts, tuple(model.input_shape[1:3]),
                                         calibration_steps))
        if not images:
            raise ConversionError(f"{calibration_data}: no readable images for calibration")
    content = tflite_content(model, precision, images, io_type, float_islands)
    if precision == "int8" and quantization_aware:
        precision = "int8-qat"
    outputs = check_outputs(facts.task, outputs)
    extra = {}
    if facts.task == "classification":
        outputs = classifier_output_kind(model)
    elif outputs == "detections":
        from .detection_postprocess import DetectionPostprocessing

        extra["postprocessing"] = dict((postprocessing or DetectionPostprocessing()).to_dict(),
                                       num_classes=object_classes)
    from .detection_postprocess import POSTPROCESS_OP

    allowed = [POSTPROCESS_OP] if outputs == "detections" else []
    if custom_ops(content) != allowed:
        raise ConversionError(f"the converted model holds ops outside TFLite's builtins: {custom_ops(content)}")
    write_tflite(content, out, facts, model.input_shape[1:3], precision, io_type, outputs, **extra)
    return inspect_tflite(out, precision, rewrites)


def custom_ops(content):
    """The names of the ops outside TFLite's builtins (custom and Flex ops) in ``.tflite`` bytes, sorted."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(bytearray(content), 0)
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return sorted(code.CustomCode().decode("utf-8") for code in codes if code.CustomCode())


def tflite_content(model, precision="fp32", calibration=None, io_type="float32", float_islands=True):
    """The ``.tflite`` bytes of a fixed-size Keras model (Keras 3 or tf_keras), builtin ops only.

    ``calibration``: for post-training ``int8``, a list of ``[image batch]``
    inputs as the model takes them (a quantization-aware model takes its ranges
    from its fake-quant nodes). ``float_islands``: for ``int8``, the ops XNNPACK
    has no int8 kernel for turned to float inside the int8 file (module
    ``float_islands``), so that XNNPACK runs the whole graph. Any Keras model
    converts here the same way (the speed benchmark converts kimm's with it,
    without islands, as TFLiteConverter does by default).
    """
    content = _converted(model, precision, calibration, io_type)
    return float_islands_in_quantized(content) if precision == "int8" and float_islands else content


def _converted(model, precision, calibration=None, io_type="float32"):
    import tensorflow as tf

    converter = _converter(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision in ("fp16", "dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        converter.representative_dataset = lambda: iter(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_type)
        converter.inference_output_type = getattr(tf, io_type)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the whole saved signature
            return converter.convert()
    except Exception as error:  # noqa: BLE001 - reported with the ops that need more than builtins
        detail = _unsupported_ops_message(str(error))
        if detail:
            raise ConversionError(f"the model needs ops outside TFLite's builtins: {detail}") from None
        raise ConversionError(f"conversion failed: {str(error).splitlines()[0][:300]}") from None


def _converter(model):
    """TFLiteConverter for a Keras 3 or tf_keras model.

    A tf_keras model (quantization-aware ones) goes in as its inference function beside its variables.
    ``from_keras_model`` would save the whole tf_keras model first, tracing every layer's call for Keras'
    own SavedModel metadata: the digits' QAT model took 37 s to convert that way, 12 s this way, to the
    same file but for the converter's debug names. The signature keeps the model's input and output names.
    """
    import tensorflow as tf

    from keras_mobilevitv2.backend import keras_module_name

    if keras_module_name(model) != "tf_keras":
        return tf.lite.TFLiteConverter.from_keras_model(model)
    (name,), (tensor,) = model.input_names, model.inputs

    @tf.function(input_signature=[tf.TensorSpec(tensor.shape, tensor.dtype, name=name)])
    def serve(image):
        outputs = model(image, training=False)
        return outputs if isinstance(outputs, dict) else dict(zip(model.output_names, tf.nest.flatten(outputs)))

    holder = tf.Module()  # what the converter saves: the function and the variables it reads, not the layers
    holder.serve, holder.weights = serve, list(model.variables)
    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder)


def write_tflite(content, out, facts, input_size, precision, io_type, outputs, **more):
    """Writes converted ``content`` to ``out`` atomically, with the model's facts in its metadata
    (``outputs``: what the file outputs, one of ``OUTPUTS``; ``more``: more facts)."""
    facts_dict = facts.to_dict()
    facts_dict.update(input_size=list(input_size), precision=precision, io_type=io_type, outputs=outputs, **more)
    with atomic_output(out) as temporary:
        with open(temporary, "wb") as file:
            file.write(add_metadata(content, facts_dict))


def inspect_tflite(path, precision=None, rewrites=None):
    """The op counts, input / output details and XNNPACK delegation of a ``.tflite`` file.

    ``rewrites``: what the conversion rewrote (``fixed_size_model``), carried into the report.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path))
    op_details = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]  # noqa: SLF001
    ops = collections.Counter(op["op_name"] for op in op_details)
    float_ops = collections.Counter()
    if precision is not None and precision.startswith("int8"):
        dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
        float_ops.update(op["op_name"] for op in op_details
                         if op["op_name"] not in ("DEQUANTIZE", "TFLite_Detection_PostProcess")
                         and any(dtypes.get(int(t)) == np.float32 for t in op["outputs"]))

    def details(d):
        return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]],
                "quantization": [float(q) for q in d["quantization"]]}

    signatures = interpreter.get_signature_list()
    outputs = {}
    if len(signatures) == 1:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        outputs = {name: details(d) for name, d in sorted(runner.get_output_details().items())}
    return ConversionReport(
        path=os.fspath(path), precision=precision, size_bytes=os.path.getsize(path), ops=dict(ops),
        input_details=details(interpreter.get_input_details()[0]),
        output_details=details(interpreter.get_output_details()[0]), xnnpack=xnnpack_delegation(path),
        rewrites=rewrites or GraphRewrites(), outputs=outputs, float_ops=dict(float_ops))
