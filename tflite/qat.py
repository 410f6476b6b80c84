"""Quantization-aware training with tensorflow-model-optimization, then a full-integer ``.tflite``.

tfmot works on tf_keras (Keras 2) models only (importing it sets TF_USE_LEGACY_KERAS
for the process, which the Keras 3 code here does not read): the same architecture is built
under tf_keras by the zoo's one code path (``keras_module="tf_keras"``), takes
the trained weights, and gets fake-quantization. tfmot's registry knows
Keras' convolutions, norms and activations; the layers of this package get
their own QuantizeConfigs here: reshapes and the input scaling pass values
through unchanged, the one-group norm and the attentions' token mixing have
their outputs quantized.
"""

import os

from keras_mobilevitv2.files import check_output_path

from .convert import ConversionError, inspect_tflite, load_keras_model, write_tflite

# Layers that only move or scale values, and layers whose output gets its own quantizer.
PASS_THROUGH_LAYERS = ("Preprocessing", "UnfoldPatches", "FoldPatches", "ResizeToMultiple", "ResizeLike")
OUTPUT_QUANTIZED_LAYERS = ("OneGroupNorm", "SeparableAttention", "MultiHeadPatchAttention")


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


def quantization_aware_model(model):
    """A tf_keras copy of a Keras 3 model of this package, with fake-quantization (tfmot)."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    from keras_mobilevitv2 import create_model, get_preprocessing
    from keras_mobilevitv2.layers import layers_for

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
    custom = {name: getattr(layers_for("tf_keras"), name)
              for name in PASS_THROUGH_LAYERS + OUTPUT_QUANTIZED_LAYERS}
    custom.update(PassThroughQuantizeConfig=pass_through, OutputQuantizeConfig=output_quantized)
    with quantize.quantize_scope(custom):
        return quantize.quantize_apply(annotated)


def quantization_aware_training(model_path, data, out_dir, epochs=1, batch_size=32, learning_rate=1e-4,
                                val_split=0.2, seed=0, calibration_steps=100, io_type="uint8", overwrite=False):
    """Fine-tunes a ``.keras`` model with fake-quantization on ``data`` and writes ``model_int8.tflite``.

    The training data and augmentation are the training stage's (``light`` preset);
    the result is full integer (builtin int8 ops, ``io_type`` input and output) and
    carries the model's facts. Returns ``(path, ConversionReport, history)``.
    """
    import tensorflow as tf
    import tf_keras

    from keras_mobilevitv2 import get_preprocessing
    from keras_mobilevitv2.data import AugmentConfig, make_eval_dataset, make_train_dataset
    from keras_mobilevitv2.training import TrainConfig, load_data

    out_dir = os.fspath(out_dir)
    out = os.path.join(out_dir, "model_int8.tflite")
    os.makedirs(out_dir, exist_ok=True)
    check_output_path(out, overwrite, suffix=".tflite")
    model = load_keras_model(model_path)
    facts = get_preprocessing(model)
    size = tuple(model.input_shape[1:3])
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

    quantized = quantization_aware_model(model)
    quantized.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                      loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                      metrics=["accuracy"])
    history = quantized.fit(train_dataset, epochs=epochs, steps_per_epoch=steps, validation_data=val_dataset,
                            verbose=2)

    inputs = tf_keras.Input(batch_shape=(1, *size, 3))
    converter = tf.lite.TFLiteConverter.from_keras_model(tf_keras.Model(inputs, quantized(inputs)))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = [x[:1].numpy() for x, _ in val_dataset or train_dataset.take(calibration_steps)]
    converter.representative_dataset = lambda: ([x] for x in calibration[:calibration_steps])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = getattr(tf, io_type)
    converter.inference_output_type = getattr(tf, io_type)
    content = converter.convert()
    write_tflite(content, out, facts, size, "int8-qat", io_type)
    return out, inspect_tflite(out, "int8-qat"), {k: [float(v) for v in vs] for k, vs in history.history.items()}

