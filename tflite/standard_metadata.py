"""The standard TFLite Metadata in every converted file, so that runtimes read the file with no code.

MediaPipe Tasks (ImageClassifier, ImageSegmenter, ObjectDetector), the LiteRT
support library, Android Studio's model binding and Netron read one schema
(``schema/metadata_schema.fbs``, file identifier ``M001``) from a model
metadata entry named ``TFLITE_METADATA``, and the files it names (labels) from
an uncompressed zip appended to the model. This module builds both from the
kit's facts, as MediaPipe's own metadata writers would (they do not import
beside TensorFlow 2.21), with the schema code flatc generates (``schema/``):

- input ``image``: RGB, and the normalisation that turns pixels in [0, 255]
  into what the model takes (mean 0, std 255 / input_max; MediaPipe needs it
  for a float input and ignores it for uint8);
- a classifier's output ``score`` with ``labels.txt`` along its class axis;
- a segmenter's output ``segmentation_masks`` (GRAYSCALE image, classes along
  the last axis) with ``labels.txt`` and the activation MediaPipe applies for
  confidence masks (``SEGMENTER_METADATA``: softmax, as the file outputs logits);
- a detector's four outputs (``detection_postprocess``) as MediaPipe's ObjectDetector reads them:
  ``location`` (boxes as ymin, xmin, ymax, xmax ratios), ``category`` with
  ``labels.txt`` as its values (0-based, no background), ``score``, ``number
  of detections``; raw outputs described, ``class_logits`` labelled
  (background first).
"""

import io
import zipfile

import flatbuffers

from .schema import image_segmenter_metadata_schema_generated as segmenter_fb
from .schema import metadata_schema_generated as fb

STANDARD_METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
SEGMENTER_METADATA_NAME = "SEGMENTER_METADATA"
SEGMENTER_IDENTIFIER = b"V001"
LABELS_FILE = "labels.txt"
_LABELS_DESCRIPTION = "Labels for categories that the model can recognize."
# TFLite's TensorType values of the types an input or output takes here.
_FLOAT32, _UINT8 = 0, 3


def standard_metadata(facts, input_type, output_types):
    """``(metadata flatbuffer bytes, {file name: bytes})`` for a converted model with the kit's ``facts``
    (a dict, as stored in the file), the TFLite type of its input and of each output (``output_types``:
    ``[(name in facts' order, TensorType, shape)]``)."""
    task = facts.get("task", "classification")
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [_image_input(facts, input_type)]
    files = {}
    if task == "classification":
        (_, output_type, shape), = output_types
        labels = _labels(facts.get("class_names"), shape[-1])
        kind = facts.get("outputs", "logits")
        subgraph.outputTensorMetadata = [_tensor(
            "score", f"Class {kind} of the labels respectively.", fb.ContentProperties.FeatureProperties,
            fb.FeaturePropertiesT(), stats=_score_stats(output_type) if kind == "probabilities" else None,
            files=[_labels_file(fb.AssociatedFileType.TENSOR_AXIS_LABELS)])]
        name, description = "ImageClassifier", "Identify the most prominent object in the image from a known set of " \
                                               "categories."
    elif task == "segmentation":
        (_, _, shape), = output_types
        labels = _labels(facts.get("class_names"), shape[-1])
        image = fb.ImagePropertiesT()
        image.colorSpace = fb.ColorSpaceType.GRAYSCALE
        mask = _tensor("segmentation_masks", "Per-pixel class logits: the category of a pixel is their argmax.",
                       fb.ContentProperties.ImageProperties, image,
                       files=[_labels_file(fb.AssociatedFileType.TENSOR_AXIS_LABELS)])
        mask.content.range = _range(1, 2)  # dimensions 1 and 2 of [1, H, W, classes] are the image
        subgraph.outputTensorMetadata = [mask]
        subgraph.customMetadata = [_segmenter_options(segmenter_fb.Activation.SOFTMAX)]
        name, description = "ImageSegmenter", "Semantic image segmentation predicts whether each pixel of an image " \
                                              "is associated with a certain class."
    elif task == "detection" and facts.get("outputs") == "detections":
        labels = _labels(facts.get("class_names"), int(facts["postprocessing"]["num_classes"]))
        box = fb.BoundingBoxPropertiesT()
        box.index, box.type, box.coordinateType = [1, 0, 3, 2], fb.BoundingBoxType.BOUNDARIES, fb.CoordinateType.RATIO
        described = {
            "boxes": _tensor("location", "The locations of the detected boxes: ymin, xmin, ymax, xmax, "
                             "normalised to the input.", fb.ContentProperties.BoundingBoxProperties, box),
            "classes": _tensor("category", "The categories of the detected boxes (0-based, no background).",
                               fb.ContentProperties.FeatureProperties, fb.FeaturePropertiesT(),
                               files=[_labels_file(fb.AssociatedFileType.TENSOR_VALUE_LABELS)]),
            "scores": _tensor("score", "The scores of the detected boxes.", fb.ContentProperties.FeatureProperties,
                              fb.FeaturePropertiesT()),
            "num_detections": _tensor("number of detections", "The number of the detected boxes.",
                                      fb.ContentProperties.FeatureProperties, fb.FeaturePropertiesT())}
        for name in ("boxes", "classes", "scores"):
            described[name].content.range = _range(2, 2)  # dimension 2 holds the detections
        subgraph.outputTensorMetadata = [described[output] for output, _, _ in output_types]
        group = fb.TensorGroupT()
        group.name, group.tensorNames = "detection_result", ["location", "category", "score"]
        subgraph.outputTensorGroups = [group]
        name, description = "ObjectDetector", "Identify which of a known set of objects might be present and " \
                                              "provide information about their positions within the given image."
    elif task == "detection":
        shapes = {output: shape for output, _, shape in output_types}
        labels = _labels(["background", *(facts.get("class_names") or [])], shapes["class_logits"][-1])
        described = {
            "box_regressions": _tensor("box_regressions", "SSD box regressions (tx, ty, tw, th) of each anchor, "
                                       "decoded with the anchors and variances 0.1 / 0.2.",
                                       fb.ContentProperties.FeatureProperties, fb.FeaturePropertiesT()),
            "class_logits": _tensor("class_logits", "Class logits of each anchor, class 0 the background.",
                                    fb.ContentProperties.FeatureProperties, fb.FeaturePropertiesT(),
                                    files=[_labels_file(fb.AssociatedFileType.TENSOR_AXIS_LABELS)])}
        subgraph.outputTensorMetadata = [described[output] for output, _, _ in output_types]
        name, description = "SSD", "SSDLite: box regressions and class logits of every anchor; the " \
                                   "post-processing runs outside the file."
    else:
        raise ValueError(f"no standard metadata for a {task} model")
    files[LABELS_FILE] = "\n".join(labels).encode("utf-8")

    model = fb.ModelMetadataT()
    model.name = name
    model.description = f"{description} {facts.get('architecture') or ''} by keras_mobilevitv2.".replace("  ", " ")
    model.author = "keras_mobilevitv2"
    model.subgraphMetadata = [subgraph]
    # The lowest metadata parser that reads every field used: tensor groups came in 1.2.0, custom metadata in 1.5.0.
    model.minParserVersion = "1.5.0" if subgraph.customMetadata else "1.2.0" if subgraph.outputTensorGroups \
        else "1.0.0"
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output()), files


def append_associated_files(model_bytes, files):
    """The model followed by a zip of ``files``, stored uncompressed (MediaPipe reads them in place) with
    offsets from the start of the file, and a fixed timestamp so that the same model gives the same bytes."""
    buffer = io.BytesIO(bytes(model_bytes))
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def read_standard_metadata(metadata_bytes, where="the model"):
    """The standard metadata as a ``ModelMetadataT`` (the generated object API), from the bytes of the
    ``TFLITE_METADATA`` buffer; ValueError naming ``where`` when they are not such metadata."""
    data = bytearray(metadata_bytes)
    if len(data) < 8 or bytes(data[4:8]) != METADATA_IDENTIFIER:
        raise ValueError(f"{where}: the {STANDARD_METADATA_NAME} buffer is not TFLite Metadata (no M001 identifier)")
    return fb.ModelMetadataT.InitFromPackedBuf(data, 0)


def _image_input(facts, input_type):
    image = fb.ImagePropertiesT()
    image.colorSpace = fb.ColorSpaceType.RGB
    tensor = _tensor("image", "Input image to be processed: RGB, resized to the input size "
                     f"({facts.get('interpolation', 'bicubic')}).", fb.ContentProperties.ImageProperties, image)
    normalization = fb.NormalizationOptionsT()
    # pixel p -> (p - mean) / std = p * input_max / 255, what the model takes
    normalization.mean, normalization.std = [0.0], [255.0 / float(facts.get("input_max", 255.0))]
    unit = fb.ProcessUnitT()
    unit.optionsType, unit.options = fb.ProcessUnitOptions.NormalizationOptions, normalization
    tensor.processUnits = [unit]
    tensor.stats = fb.StatsT()
    if input_type in (_FLOAT32, _UINT8):
        tensor.stats.min = [0.0]
        tensor.stats.max = [float(facts.get("input_max", 255.0)) if input_type == _FLOAT32 else 255.0]
    return tensor


def _tensor(name, description, content_type, content_properties, stats=None, files=None):
    tensor = fb.TensorMetadataT()
    tensor.name, tensor.description = name, description
    tensor.content = fb.ContentT()
    tensor.content.contentPropertiesType, tensor.content.contentProperties = content_type, content_properties
    tensor.stats = stats or fb.StatsT()
    tensor.associatedFiles = files
    return tensor


def _score_stats(output_type):
    stats = fb.StatsT()
    stats.min, stats.max = [0.0], [255.0 if output_type == _UINT8 else 1.0]
    return stats


def _range(low, high):
    value_range = fb.ValueRangeT()
    value_range.min, value_range.max = low, high
    return value_range


def _labels_file(file_type):
    labels = fb.AssociatedFileT()
    labels.name, labels.description, labels.type = LABELS_FILE, _LABELS_DESCRIPTION, file_type
    return labels


def _labels(names, count):
    """One name per class: the model's names, or class numbers when it has none (or not as many)."""
    names = [str(name) for name in names or []]
    if len(names) != count:
        names = [str(i) for i in range(count)]
    return [" ".join(name.split()) or str(i) for i, name in enumerate(names)]  # one line each


def _segmenter_options(activation):
    options = segmenter_fb.ImageSegmenterOptionsT()
    options.activation = activation
    builder = flatbuffers.Builder(0)
    builder.Finish(options.Pack(builder), SEGMENTER_IDENTIFIER)
    custom = fb.CustomMetadataT()
    custom.name, custom.data = SEGMENTER_METADATA_NAME, list(builder.Output())
    return custom
