"""Quantization-aware training with tensorflow-model-optimization, then a full-integer ``.tflite``.

tfmot works on tf_keras (Keras 2) models only (importing it sets TF_USE_LEGACY_KERAS
for the process, which the Keras 3 code here does not read): the same architecture is built
under tf_keras by the zoo's one code path (``keras_module="tf_keras"``), takes
the trained weights, and gets fake-quantization. tfmot's registry knows
Keras' convolutions, norms and activations; the layers of this package get
their own QuantizeConfigs here: reshapes and the input scaling pass values
through unchanged, the one-group norm and the attentions' token mixing have
their outputs quantized.

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

# Layers that only move or scale values, and layers whose output gets its own quantizer.
PASS_THROUGH_LAYERS = ("Preprocessing", "UnfoldPatches", "FoldPatches", "ResizeToMultiple", "ResizeLike")
OUTPUT_QUANTIZED_LAYERS = ("OneGroupNorm", "SeparableAttention", "MultiHeadPatchAttention")


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


def _custom_objects():
    from keras_mobilevitv2.layers import layers_for

    pass_through, output_quantized = _quantize_configs()
    custom = {name: getattr(layers_for("tf_keras"), name) for name in PASS_THROUGH_LAYERS + OUTPUT_QUANTIZED_LAYERS}
    custom.update(PassThroughQuantizeConfig=pass_through, OutputQuantizeConfig=output_quantized)
    return custom


def quantization_aware_model(model, freeze_batch_norm=True):
    """A tf_keras copy of a Keras 3 model of this package, with fake-quantization (tfmot).

    ``freeze_batch_norm``: BatchNorm keeps the float model's statistics and runs in
    inference mode, so fine-tuning learns the quantization, not new statistics
    from small, augmented batches.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras

    from keras_mobilevitv2 import create_model, get_preprocessing

    facts = get_preprocessing(model)
    if not facts.architecture:
        raise ConversionError("the model does not say its architecture, so it cannot be rebuilt for QAT")
    height, width = model.input_shape[1:3]
    legacy = create_model(facts.architecture, input_shape=(height or facts.input_size[0],
                                                           width or facts.input_size[1], 3),
                          classes=model.output_shape[-1], class_names=facts.class_names,
                          classifier_activation=None, include_preprocessing=facts.input_max == 255.0,
                          keras_module="tf_keras")
    legacy.set_weights(model.get_weights())
    if freeze_batch_norm:
        for layer in legacy.layers:
            if isinstance(layer, tf_keras.layers.BatchNormalization):
                layer.trainable = False
    pass_through, output_quantized = _quantize_configs()
    quantize = tfmot.quantization.keras

    def annotate(layer):
        kind = type(layer).__name__
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        if kind in PASS_THROUGH_LAYERS:
            return quantize.quantize_annotate_layer(layer, quantize_config=pass_through())
        if kind in OUTPUT_QUANTIZED_LAYERS:
            return quantize.quantize_annotate_layer(layer, quantize_config=output_quantized())
        return quantize.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(legacy, clone_function=annotate)
    with quantize.quantize_scope(_custom_objects()):
        return quantize.quantize_apply(annotated)


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
        quantized = quantization_aware_model(float_model, freeze_batch_norm=run["freeze_batch_norm"])
    except (OSError, KeyError, ValueError) as error:
        raise ConversionError(f"{run_dir}: not a complete QAT run ({error})") from None
    quantized.load_weights(os.path.join(run_dir, run["weights"]))
    return quantized


def quantization_aware_training(model_path, data, out_dir, epochs=2, batch_size=32, learning_rate=1e-5,
                                val_split=0.2, seed=0, calibration_steps=200, io_type="uint8",
                                freeze_batch_norm=True, overwrite=False):
    """Fine-tunes a ``.keras`` model with fake-quantization on ``data``, then converts it to full integer.

    The training data, split and augmentation are the training stage's (``light``
    preset). The activation ranges are first set from ``calibration_steps``
    training images; the learning rate then decays from ``learning_rate`` to zero
    over the run (cosine). The default, 1e-5, fine-tunes a trained model without
    moving it off what it learned: on the quickstart's digits model, 1e-4 cost
    0.33 point of top-1 and 1e-5 none. Writes to ``out_dir``: ``float_model.keras`` (a copy of
    the input), ``qat_weights.h5``, ``qat_run.json`` (settings and history), and,
    through ``convert`` (precision int8, calibrated on ``data``),
    ``model_int8.tflite`` with builtin int8 ops, ``io_type`` input and output and
    the model's facts. Returns ``(tflite path, ConversionReport, history)``.
    """
    import shutil

    import tf_keras

    from keras_mobilevitv2 import get_preprocessing
    from keras_mobilevitv2.data import AugmentConfig, make_eval_dataset, make_train_dataset
    from keras_mobilevitv2.training import TrainConfig, load_data

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
    train_source, val_source = load_data(data, TrainConfig(val_split=val_split, seed=seed))
    if list(train_source.class_names) != list(facts.class_names or train_source.class_names):
        raise ConversionError(f"{data}: its classes are not the model's {list(facts.class_names)}")
    train_dataset, steps = make_train_dataset(train_source, size, batch_size, AugmentConfig.preset("light"),
                                              seed=seed, epochs=epochs)
    scale = facts.input_max / 255.0
    train_dataset = train_dataset.map(lambda x, y: (x * scale, y))
    val_dataset = None
    if val_source is not None:
        val_dataset = make_eval_dataset(val_source, size, batch_size, facts.crop_fraction).map(
            lambda x, y: (x * scale, y))

    quantized = quantization_aware_model(model, freeze_batch_norm=freeze_batch_norm)
    calibrate_ranges(quantized, train_dataset.take(max(1, calibration_steps // batch_size)).map(lambda x, y: x))
    schedule = tf_keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps))
    quantized.compile(optimizer=tf_keras.optimizers.Adam(schedule),
                      loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                      metrics=["accuracy"])
    fitted = quantized.fit(train_dataset, epochs=epochs, steps_per_epoch=steps, validation_data=val_dataset,
                           verbose=2)
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}

    os.makedirs(out_dir, exist_ok=True)
    with atomic_output(outputs[QAT_FLOAT_MODEL]) as temporary:
        shutil.copyfile(model_path, temporary)
    with atomic_output(outputs[QAT_WEIGHTS]) as temporary:
        quantized.save_weights(temporary)
    run = dict(float_model=QAT_FLOAT_MODEL, weights=QAT_WEIGHTS, freeze_batch_norm=freeze_batch_norm,
               source_model=os.path.abspath(model_path), data=os.path.abspath(os.fspath(data)), epochs=epochs,
               batch_size=batch_size, learning_rate=learning_rate, seed=seed, history=history)
    write_json(outputs[QAT_RUN_FILE], run)  # written last: it marks the run complete
    report = convert(out_dir, outputs[QAT_TFLITE], precision="int8", calibration_data=data,
                     calibration_steps=calibration_steps, io_type=io_type, overwrite=overwrite)
    return outputs[QAT_TFLITE], report, history
