"""Quantization-aware training with tensorflow-model-optimization, then a full-integer ``.tflite``.

tfmot works on tf_keras (Keras 2) models only (importing it sets TF_USE_LEGACY_KERAS
for the process, which the Keras 3 code here does not read): the same architecture is built
under tf_keras by the zoo's one code path (``keras_module="tf_keras"``), takes
the trained weights, and gets fake-quantization. tfmot's registry knows
Keras' convolutions, norms and activations; the layers of this package get
their own QuantizeConfigs here: reshapes, resizes, splits, pooling, dropout and
the input scaling pass values through unchanged, the norms (MobileViTv2's
one-group norm, MobileViT's LayerNormalization, which tfmot's registry lacks)
and the attentions' token mixing have their outputs quantized. DeepLabv3's atrous
convolutions train in their fast tap-sum form (``AtrousConv2D``, a Conv2D
subclass tfmot does not know) with tfmot's convolution weight quantizers, their
outputs quantized after the BatchNormalization that follows them (as a folded
convolution's are); for conversion the same wrappers hold the plain dilated
Conv2D, which becomes one CONV_2D (the tap-sum form does not convert). Classifiers,
segmenters (DeepLabv3, PSPNet; without the auxiliary head) and detectors
(SSDLite) fine-tune with their own task's data pipeline and loss.

The run directory is what ``convert`` takes to make the full-integer file
(``mobilevitv2 convert RUN_DIR --precision int8 ...``): it recognises the
directory and rebuilds the fine-tuned model here.
"""

import collections
import contextlib
import functools
import json
import os

from keras_mobilevitv2.files import atomic_output, check_output_path, write_json

from .convert import ConversionError, convert, load_keras_model

# A QAT run directory: the float model it started from, the fine-tuned weights, what was done.
QAT_RUN_FILE = "qat_run.json"
QAT_FLOAT_MODEL = "float_model.keras"
QAT_WEIGHTS = "qat_weights.h5"
QAT_TFLITE = "model_int8.tflite"

# Layers that only move, average or scale values (dropout is the identity at inference), layers whose output
# gets its own quantizer, and a Conv2D subclass that tfmot does not know.
PASS_THROUGH_LAYERS = ("Preprocessing", "UnfoldPatches", "FoldPatches", "ResizeToMultiple", "ResizeLike", "ResizeTo",
                       "SplitChannels", "AdaptiveAveragePooling", "SpatialDropout2D")
OUTPUT_QUANTIZED_LAYERS = ("OneGroupNorm", "LayerNormalization", "SeparableAttention", "MultiHeadPatchAttention")
CONVOLUTION_LAYERS = ("AtrousConv2D",)


@functools.cache
def _quantize_configs():
    import tensorflow_model_optimization as tfmot

    quantize = tfmot.quantization.keras

    class PassThroughQuantizeConfig(quantize.QuantizeConfig):
        """No weights to quantize, the output keeps its input's quantization."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    class OutputQuantizeConfig(PassThroughQuantizeConfig):
        """Float weights (norm scales), an 8-bit asymmetric quantizer on the output."""

        def get_output_quantizers(self, layer):
            return [quantize.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    return PassThroughQuantizeConfig, OutputQuantizeConfig


def _convolution_config_class():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry)

    return registry.Default8BitConvQuantizeConfig


def _convolution_config():
    """tfmot's Conv2D config, per-channel 8-bit weights, with the output left to the BatchNormalization after the
    convolution (quantized there, as a Conv2D + BatchNormalization pair folded into one convolution is)."""
    return _convolution_config_class()(["kernel"], [], False)


def _norms_after(model, kinds):
    """Names of the BatchNormalization layers whose input is a layer of one of ``kinds`` (class names)."""
    import tensorflow as tf

    names = set()
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            for node in layer._inbound_nodes:  # noqa: SLF001 - the functional graph's links
                if any(type(inbound).__name__ in kinds for inbound in tf.nest.flatten(node.inbound_layers)):
                    names.add(layer.name)
    return names


def _custom_objects():
    from keras_mobilevitv2.layers import layers_for

    pass_through, output_quantized = _quantize_configs()
    layers = layers_for("tf_keras")
    custom = {name: getattr(layers, name) for name in PASS_THROUGH_LAYERS + OUTPUT_QUANTIZED_LAYERS
              if hasattr(layers, name)}  # SpatialDropout2D is Keras' own
    custom.update(PassThroughQuantizeConfig=pass_through, OutputQuantizeConfig=output_quantized,
                  Default8BitConvQuantizeConfig=_convolution_config_class())
    return custom


def quantization_aware_model(model, freeze_batch_norm=True, for_conversion=False):
    """A tf_keras copy of a Keras 3 model of this package, with fake-quantization (tfmot).

    ``freeze_batch_norm``: BatchNorm keeps the float model's statistics and runs in
    inference mode, so fine-tuning learns the quantization, not new statistics
    from small, augmented batches. ``for_conversion``: atrous convolutions as
    plain dilated Conv2D (the same variables; slow to train, but the converter's).
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras

    from keras_mobilevitv2 import create_model, get_preprocessing
    from keras_mobilevitv2.models import rebuild_model

    facts = get_preprocessing(model)
    if not facts.architecture:
        raise ConversionError("the model does not say its architecture, so it cannot be rebuilt for QAT")
    height, width = model.input_shape[1:3]
    input_shape = (height or facts.input_size[0], width or facts.input_size[1], 3)
    if facts.task == "classification":  # logits, whatever the float model ends in: the loss takes logits
        legacy = create_model(facts.architecture, input_shape=input_shape, classes=model.output_shape[-1],
                              class_names=facts.class_names, classifier_activation=None,
                              include_preprocessing=facts.input_max == 255.0, keras_module="tf_keras")
        legacy.set_weights(model.get_weights())
    else:  # the same segmenter (without its training-only auxiliary head) or detector, under tf_keras
        changes = {"aux_head": False} if facts.task == "segmentation" else {}
        legacy = rebuild_model(model, input_shape=input_shape, keras_module="tf_keras", **changes)
    if freeze_batch_norm:
        for layer in legacy.layers:
            if isinstance(layer, tf_keras.layers.BatchNormalization):
                layer.trainable = False
    pass_through, output_quantized = _quantize_configs()
    quantize = tfmot.quantization.keras
    norms_after_convolutions = _norms_after(legacy, CONVOLUTION_LAYERS)

    def annotate(layer):
        kind = type(layer).__name__
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        if kind in PASS_THROUGH_LAYERS:
            return quantize.quantize_annotate_layer(layer, quantize_config=pass_through())
        if kind in OUTPUT_QUANTIZED_LAYERS or layer.name in norms_after_convolutions:
            return quantize.quantize_annotate_layer(layer, quantize_config=output_quantized())
        if kind in CONVOLUTION_LAYERS:
            if for_conversion:
                plain = tf_keras.layers.Conv2D.from_config(layer.get_config())
                plain.build(layer.input_shape)
                plain.set_weights(layer.get_weights())
                layer = plain
            return quantize.quantize_annotate_layer(layer, quantize_config=_convolution_config())
        return quantize.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(legacy, clone_function=annotate)
    with quantize.quantize_scope(_custom_objects()), _inputs_kept_in_order():
        return quantize.quantize_apply(annotated)


@contextlib.contextmanager
def _inputs_kept_in_order():
    """While active, tfmot's graph transforms keep the order of a layer's inputs.

    tfmot 0.8.1's ModelTransformer looks a matched layer's inputs up in the order
    the model declares them, not the order the layer takes them, so folding a
    Conv2D + BatchNormalization + ReLU that feeds a Concatenate moves it to the
    end of the Concatenate's inputs when a later-declared layer comes before it
    (tensorflow/model-optimization#1179). DeepLabv3's ASPP is such a case: its
    1x1 branch went after the others, and the fake-quantized model computed
    another function (relative error 0.99 after the concatenation).
    """
    from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
        model_transformer)

    original = model_transformer.ModelTransformer._get_layers  # noqa: SLF001

    def in_the_order_asked(self, layer_names):
        by_name = {layer["config"]["name"]: layer for layer in self._config["layers"]}  # noqa: SLF001
        return [by_name[name] for name in layer_names if name in by_name]

    model_transformer.ModelTransformer._get_layers = in_the_order_asked  # noqa: SLF001
    try:
        yield
    finally:
        model_transformer.ModelTransformer._get_layers = original  # noqa: SLF001


@contextlib.contextmanager
def _ranges_averaging_batches():
    """While active, tfmot's moving-average quantizers set their ranges to the mean over the batches seen.

    tfmot starts every activation range at [-6, 6] and moves it with a fixed EMA
    decay of 0.999, so a fine-tune of a few hundred steps ends with ranges still
    near [-6, 6]. Here the decay of the n-th call of each quantizer is n / (n + 1):
    the first batch sets the range, later ones average into it.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize
    calls = collections.Counter()

    def averaging(inputs, min_var, max_var, **kwargs):
        count = calls[id(min_var)]
        calls[id(min_var)] += 1
        kwargs["ema_decay"] = count / (count + 1)
        return original(inputs, min_var, max_var, **kwargs)

    quant_ops.MovingAvgQuantize = averaging
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def calibrate_ranges(quantized, batches):
    """Sets the activation ranges of a fake-quantized model from ``batches`` of images (run eagerly).

    BatchNorm must be frozen (``freeze_batch_norm``): the batches run in training
    mode, which is what updates the ranges.
    """
    with _ranges_averaging_batches():
        for images in batches:
            quantized(images, training=True)


def is_quantization_aware_run(path):
    """True for a run directory written by ``quantization_aware_training`` (what ``convert`` takes)."""
    return os.path.isfile(os.path.join(os.fspath(path), QAT_RUN_FILE))


def load_quantization_aware_model(run_dir):
    """The fine-tuned fake-quantized model of a QAT run directory.

    tfmot's wrappers cannot be reloaded from a ``.keras`` file (their quantizer
    variables are built twice on load), so a run keeps the float model it started
    from and the fine-tuned weights (``qat_weights.h5``, arrays only): the model is
    rebuilt here exactly as it was trained and takes those weights.
    """
    from .convert import load_keras_model

    run_dir = os.fspath(run_dir)
    try:
        with open(os.path.join(run_dir, QAT_RUN_FILE), encoding="utf-8") as file:
            run = json.load(file)
        float_model = load_keras_model(os.path.join(run_dir, run["float_model"]))
        quantized = quantization_aware_model(float_model, freeze_batch_norm=run["freeze_batch_norm"],
                                             for_conversion=True)
    except (OSError, KeyError, ValueError) as error:
        raise ConversionError(f"{run_dir}: not a complete QAT run ({error})") from None
    quantized.load_weights(os.path.join(run_dir, run["weights"]))
    return quantized


def quantization_aware_training(model_path, data, out_dir, epochs=2, batch_size=32, learning_rate=1e-5,
                                val_split=0.2, seed=0, calibration_steps=200, io_type="uint8",
                                freeze_batch_norm=True, overwrite=False, annotations=None):
    """Fine-tunes a ``.keras`` model with fake-quantization on ``data``, then converts it to full integer.

    Each task trains as its training stage does, with the ``light`` augmentation
    preset: a classifier on the class folders with label-smoothed cross-entropy,
    a segmenter on image / mask pairs with the pixel cross-entropy (no auxiliary
    head), a detector on boxes matched to its anchors with the multibox loss. The
    activation ranges are first set from ``calibration_steps`` training images;
    the learning rate then decays from ``learning_rate`` to zero over the run
    (cosine). The default, 1e-5, fine-tunes a trained model without moving it off
    what it learned: on the quickstart's digits model, 1e-4 cost 0.33 point of
    top-1 and 1e-5 none. Writes to ``out_dir``: ``float_model.keras`` (a copy of
    the input), ``qat_weights.h5``, ``qat_run.json`` (settings and history), and,
    through ``convert`` (precision int8, calibrated on the training images),
    ``model_int8.tflite`` with builtin int8 ops, ``io_type`` input and output, the
    task's outputs (probabilities, head logits or detections) and the model's
    facts. ``annotations``: a detector's COCO JSON for ``data`` (a folder of images), as ``train`` takes it.
    Returns ``(tflite path, ConversionReport, history)``.
    """
    import shutil

    import tf_keras

    from keras_mobilevitv2 import get_preprocessing

    out_dir = os.fspath(out_dir)
    outputs = {name: os.path.join(out_dir, name) for name in (QAT_RUN_FILE, QAT_FLOAT_MODEL, QAT_WEIGHTS, QAT_TFLITE)}
    if os.path.isdir(out_dir):
        for path in outputs.values():
            check_output_path(path, overwrite, inputs=(model_path,))
    model = load_keras_model(model_path)
    facts = get_preprocessing(model)
    size = tuple(model.input_shape[1:3])
    if None in size:
        size = tuple(facts.input_size)
    if facts.task == "classification":
        train_dataset, steps, val_dataset, calibration_data = _classification_data(
            facts, data, size, batch_size, epochs, val_split, seed)
    else:
        train_dataset, steps, val_dataset, calibration_data = _dense_data(
            model, facts, data, annotations, size, batch_size, epochs, val_split, seed)
    scale = facts.input_max / 255.0
    train_dataset = train_dataset.map(lambda x, y: (x * scale, y))
    if val_dataset is not None:
        val_dataset = val_dataset.map(lambda x, y: (x * scale, y))

    quantized = quantization_aware_model(model, freeze_batch_norm=freeze_batch_norm)
    calibrate_ranges(quantized, train_dataset.take(max(1, calibration_steps // batch_size)).map(lambda x, y: x))
    optimizer = tf_keras.optimizers.Adam(
        tf_keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps)))
    if facts.task == "classification":
        trained = quantized
        trained.compile(optimizer=optimizer, metrics=["accuracy"],
                        loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    elif facts.task == "segmentation":
        from keras_mobilevitv2.data.segmentation import IGNORE_LABEL
        from keras_mobilevitv2.training.tasks import segmentation_cross_entropy

        trained = quantized
        trained.compile(optimizer=optimizer, loss=lambda masks, logits: segmentation_cross_entropy(
            masks, logits, IGNORE_LABEL))
    else:
        trained = _detector_trainer(quantized)
        trained.compile(optimizer=optimizer)
    fitted = trained.fit(train_dataset, epochs=epochs, steps_per_epoch=steps, validation_data=val_dataset,
                         verbose=2)
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}

    os.makedirs(out_dir, exist_ok=True)
    with atomic_output(outputs[QAT_FLOAT_MODEL]) as temporary:
        shutil.copyfile(model_path, temporary)
    with atomic_output(outputs[QAT_WEIGHTS]) as temporary:
        quantized.save_weights(temporary)
    run = dict(float_model=QAT_FLOAT_MODEL, weights=QAT_WEIGHTS, freeze_batch_norm=freeze_batch_norm,
               task=facts.task, source_model=os.path.abspath(model_path), data=os.path.abspath(os.fspath(data)),
               epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, history=history)
    write_json(outputs[QAT_RUN_FILE], run)  # written last: it marks the run complete
    report = convert(out_dir, outputs[QAT_TFLITE], precision="int8", calibration_data=calibration_data,
                     calibration_steps=calibration_steps, io_type=io_type, overwrite=overwrite)
    return outputs[QAT_TFLITE], report, history


def _classification_data(facts, data, size, batch_size, epochs, val_split, seed):
    """A classifier's ``(train dataset, steps, validation dataset or None, calibration folder)``."""
    from keras_mobilevitv2.data import AugmentConfig, make_eval_dataset, make_train_dataset
    from keras_mobilevitv2.training import TrainConfig, load_data

    train_source, val_source = load_data(data, TrainConfig(val_split=val_split, seed=seed))
    if list(train_source.class_names) != list(facts.class_names or train_source.class_names):
        raise ConversionError(f"{data}: its classes are not the model's {list(facts.class_names)}")
    train_dataset, steps = make_train_dataset(train_source, size, batch_size, AugmentConfig.preset("light"),
                                              seed=seed, epochs=epochs)
    val_dataset = None
    if val_source is not None:
        val_dataset = make_eval_dataset(val_source, size, batch_size, facts.crop_fraction)
    return train_dataset, steps, val_dataset, data


def _dense_data(model, facts, data, annotations, size, batch_size, epochs, val_split, seed):
    """A segmenter's or detector's ``(train dataset, steps, validation dataset or None, calibration folder)``: its
    training stage's data (the ``light`` augmentation, a detector's anchors matched in the pipeline), and the
    folder its training images are in (not the masks) for the int8 file's calibration."""
    from keras_mobilevitv2.models import model_settings
    from keras_mobilevitv2.training import TrainConfig
    from keras_mobilevitv2.training.tasks import get_task

    task = get_task(facts.task)
    config = TrainConfig(model=model_settings(model)[0], task=facts.task, image_size=size, epochs=epochs,
                         batch_size=batch_size, seed=seed, val_split=val_split, aux_loss_weight=0.0,
                         augmentation="light", cache_bytes=0).task_defaults()
    try:
        train_source, val_source = task.load_data(data, config, progress=False, annotations=annotations)
    except ValueError as error:
        raise ConversionError(f"{data}: not {facts.task} data this model can train on ({error})") from None
    names = list(task.class_names(train_source))
    if facts.class_names and names != list(facts.class_names):
        raise ConversionError(f"{data}: its classes {names} are not the model's {list(facts.class_names)}")
    train_dataset, steps = task.train_dataset(train_source, config, 0)
    val_dataset = task.val_dataset(val_source, config, facts) if val_source is not None else None
    paths = train_source.image_paths if facts.task == "segmentation" else train_source.paths
    return train_dataset, steps, val_dataset, os.path.commonpath([os.path.dirname(p) for p in paths])


def _detector_trainer(detector):
    """A tf_keras model that fits ``detector`` (a fake-quantized SSDLite) with the multibox loss, which needs both
    outputs at once; logs ``loss``, ``box_loss`` and ``class_loss`` (means over each epoch)."""
    import tensorflow as tf
    import tf_keras

    from keras_mobilevitv2.detection import multibox_terms

    class QuantizedDetectorTrainer(tf_keras.Model):
        def __init__(self, model):
            super().__init__(name=f"{model.name}_trainer")
            self.detector = model
            self.trackers = {name: tf_keras.metrics.Mean(name=name) for name in ("loss", "box_loss", "class_loss")}

        @property
        def metrics(self):
            return list(self.trackers.values())

        def call(self, images, training=False):
            return self.detector(images, training=training)

        def _multibox_losses(self, batch, training):
            images, targets = batch
            outputs = self.detector(images, training=training)
            if not isinstance(outputs, dict):
                outputs = dict(zip(self.detector.output_names, outputs))
            box_loss, class_loss = multibox_terms(targets, outputs)
            return box_loss + class_loss, box_loss, class_loss

        def _log(self, losses):
            for tracker, value in zip(self.trackers.values(), losses):
                tracker.update_state(value)
            return {name: tracker.result() for name, tracker in self.trackers.items()}

        def train_step(self, batch):
            with tf.GradientTape() as tape:
                losses = self._multibox_losses(batch, training=True)
            variables = self.detector.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(losses[0], variables), variables))
            return self._log(losses)

        def test_step(self, batch):
            return self._log(self._multibox_losses(batch, training=False))

    return QuantizedDetectorTrainer(detector)
