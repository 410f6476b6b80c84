"""The preprocessing facts of a model, written once and read wherever images are prepared.

A model built here carries them in its ``preprocessing`` layer, so they are saved
in the ``.keras`` file; conversion copies them into the ``.tflite`` file and the
Android app reads them from there. Nobody types them again.
"""

import dataclasses
import math

PREPROCESSING_LAYER = "preprocessing"


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig:
    """How to turn an image into this model's input.

    input_size: (height, width) the model was built or trained for.
    crop_fraction: evaluation resizes the short side to size / crop_fraction, then centre-crops.
    interpolation: the resize filter of training and evaluation ("bicubic").
    input_max: the value of a white pixel in the model's input, 255.0 when the
        model scales inside (``include_preprocessing=True``), 1.0 otherwise.
    class_names: the names of the classifier's outputs, or None.
    architecture: the backbone's name in the zoo (``mobilevitv2_050`` ...), or None.
    task: "classification", "segmentation" or "detection".
    head: for the dense tasks, the registry name and head settings the model was
        built with (``{"model": "deeplabv3_mobilevitv2_050", "output_stride": 16, ...}``),
        so that it can be rebuilt at another size; None for classifiers.
    """

    input_size: tuple = (256, 256)
    crop_fraction: float = 0.888
    interpolation: str = "bicubic"
    input_max: float = 255.0
    class_names: tuple | None = None
    architecture: str | None = None
    task: str = "classification"
    head: dict | None = None

    @property
    def resize_size(self):
        """(height, width) to resize to before the centre crop, as timm computes it."""
        return tuple(int(math.floor(s / self.crop_fraction)) for s in self.input_size)

    def to_dict(self):
        """The facts as plain JSON types (a tf_keras layer holds its lists and dicts in trackable wrappers)."""
        def plain(value):
            if isinstance(value, str) or value is None:
                return value
            if hasattr(value, "items"):
                return {str(key): plain(item) for key, item in value.items()}
            if isinstance(value, (list, tuple)) or hasattr(value, "__iter__"):
                return [plain(item) for item in value]
            return value

        return {field.name: plain(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def layer_config(self):
        """Keyword arguments of the ``Preprocessing`` layer that carries these facts."""
        return dict(
            rescale=1.0 / self.input_max, input_size=self.input_size, crop_fraction=self.crop_fraction,
            interpolation=self.interpolation, class_names=self.class_names, architecture=self.architecture,
            task=self.task, head=self.head)

    @classmethod
    def from_layer(cls, layer):
        return cls(
            input_size=tuple(layer.input_size), crop_fraction=layer.crop_fraction,
            interpolation=layer.interpolation, input_max=round(1.0 / layer.rescale, 6),
            class_names=None if layer.class_names is None else tuple(layer.class_names),
            architecture=layer.architecture, task=layer.task, head=layer.head)


def get_preprocessing(model):
    """The ``PreprocessingConfig`` a model carries (built here, or loaded from a ``.keras`` file).

    Also finds the layer inside a wrapper (quantization-aware models wrap every layer).
    """
    for layer in model.layers:
        inner = getattr(layer, "layer", None)
        if layer.name == PREPROCESSING_LAYER:
            return PreprocessingConfig.from_layer(layer)
        if inner is not None and getattr(inner, "name", None) == PREPROCESSING_LAYER:
            return PreprocessingConfig.from_layer(inner)
    raise ValueError(
        f"model {model.name!r} has no {PREPROCESSING_LAYER!r} layer: it was not built by "
        "keras_mobilevitv2, so its preprocessing is unknown")
