"""Running ``.tflite`` (LiteRT, XNNPACK) and ``.keras`` classifiers the same way, and evaluating them."""

import os

import numpy as np

from .metadata import read_metadata


def quantize_input(x, detail):
    """Float input ``x`` as the input tensor ``detail`` takes it: float as it is, integer types as
    round(x / scale + zero point), clipped to the type's range (the tensor's own scale and zero point)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
        return np.asarray(x).astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize_output(y, detail):
    """An output as float32: a quantized one (integer with a scale) as (q - zero point) * scale, the tensor's own
    parameters; others (float, or an int32 category mask, which has no scale) as they are."""
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind in "iu" and scale:
        return (np.asarray(y).astype(np.float32) - zero_point) * scale
    return np.asarray(y, np.float32)


_TASK_NOUNS = {"classification": "classifier", "segmentation": "segmentation model", "detection": "detector"}


def read_facts(path, task=None):
    """The facts of a ``.tflite`` file made by ``convert``; with ``task``, a model of that task or a one-line error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file")
    facts = read_metadata(path)
    if facts is None:
        raise ValueError(f"{path}: no keras_mobilevitv2 metadata (convert it with `mobilevitv2 convert`)")
    if task is not None and facts.get("task", "classification") != task:
        raise ValueError(f"{path}: a {facts.get('task', 'classification')} model, not a {_TASK_NOUNS[task]}")
    return facts


class TFLiteClassifier:
    """A ``.tflite`` classifier made by ``convert``: feeds RGB in [0, 255]; ``scores`` are the file's float
    output, probabilities or logits as ``output_kind`` says (the file's facts; files from before the kit
    recorded it output logits), and ``probabilities`` applies the softmax only when the file has none.

    Quantized inputs and outputs are (de)quantized with the tensors' own parameters;
    the preprocessing facts come from the file's metadata.
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        path = os.fspath(path)
        self.facts = read_facts(path)
        self.output_kind = self.facts.get("outputs", "logits")
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_size = tuple(int(s) for s in self.input["shape"][1:3])

    def scores(self, image):
        """The output for one image, ``[H, W, 3]`` RGB in [0, 255] at the model's input size."""
        x = np.asarray(image, np.float32)[np.newaxis] * (self.facts["input_max"] / 255.0)
        self.interpreter.set_tensor(self.input["index"], quantize_input(x, self.input))
        self.interpreter.invoke()
        return dequantize_output(self.interpreter.get_tensor(self.output["index"])[0], self.output)

    def scores_batch(self, images):
        """Outputs ``[B, classes]`` for images ``[B, H, W, 3]`` (the file takes one at a time)."""
        return np.stack([self.scores(image) for image in images])

    def probabilities_batch(self, images):
        return as_probabilities(self.scores_batch(images), self.output_kind)


class KerasClassifier:
    """A ``.keras`` classifier of this package behind the same interface (``output_kind``: "probabilities"
    when it ends in a softmax, as ``create_model``'s default does; trained and imported models output logits)."""

    def __init__(self, path_or_model):
        import keras

        from keras_mobilevitv2 import get_preprocessing
        from keras_mobilevitv2.backend import inference_function

        from .convert import classifier_output_kind

        self.model = path_or_model
        if isinstance(path_or_model, (str, os.PathLike)):
            from .convert import load_keras_model

            self.model = load_keras_model(path_or_model)
        if not isinstance(self.model, keras.Model):
            raise ValueError("expected a Keras model")
        facts = get_preprocessing(self.model)
        self.facts = facts.to_dict()
        self.output_kind = classifier_output_kind(self.model)
        height, width = self.model.input_shape[1:3]
        self.input_size = (height, width) if height and width else tuple(facts.input_size)
        self.run = inference_function(self.model)

    def scores(self, image):
        return self.scores_batch(np.asarray(image)[np.newaxis])[0]

    def scores_batch(self, images):
        x = np.asarray(images, np.float32) * (self.facts["input_max"] / 255.0)
        return np.asarray(self.run(x)).astype(np.float32)

    def probabilities_batch(self, images):
        return as_probabilities(self.scores_batch(images), self.output_kind)


def load_classifier(path, num_threads=None):
    path = os.fspath(path)
    if path.endswith(".tflite"):
        return TFLiteClassifier(path, num_threads)
    return KerasClassifier(path)


def softmax(logits):
    """Softmax over the last axis."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def as_probabilities(scores, output_kind):
    """A classifier's ``scores`` as probabilities: the softmax of logits; probabilities as they are."""
    if output_kind not in ("logits", "probabilities"):
        raise ValueError(f"a classifier outputs logits or probabilities, not {output_kind!r}")
    return softmax(scores) if output_kind == "logits" else np.asarray(scores, np.float32)


def prepare_image(path, classifier):
    """An image file -> float32 RGB [H, W, 3] in [0, 255], resized and centre-cropped as in evaluation."""
    import tensorflow as tf

    from keras_mobilevitv2.data import center_crop
    from keras_mobilevitv2.data.folders import inspect_image
    from keras_mobilevitv2.data.pipeline import decode_file

    try:
        native, _ = inspect_image(path)
    except Exception as error:  # noqa: BLE001 - the one-line reason is what the user needs
        raise ValueError(f"{path}: cannot read the image ({error})") from None
    image = decode_file(tf.constant(os.fspath(path)), tf.constant(native))
    return center_crop(image, classifier.input_size, classifier.facts["crop_fraction"],
                       classifier.facts.get("interpolation", "bicubic")).numpy()


def predict(model_path, image_paths, top=5):
    """``[(image, [(class name, probability), ...])]``: the ``top`` classes of every image."""
    classifier = load_classifier(model_path)
    names = classifier.facts.get("class_names")
    results = []
    for path in image_paths:
        probabilities = classifier.probabilities_batch(prepare_image(path, classifier)[np.newaxis])[0]
        order = np.argsort(-probabilities)[:top]
        results.append((os.fspath(path), [(names[i] if names else str(i), float(probabilities[i])) for i in order]))
    return results


def evaluate(model_path, data_dir, reference=None, limit=None, progress=True, batch_size=32):
    """Top-1 and top-5 of one model on an image folder (``evaluate_models`` with one model): a dict."""
    return evaluate_models([model_path], data_dir, reference, limit, progress, batch_size)[0]


def evaluate_models(model_paths, data_dir, reference=None, limit=None, progress=True, batch_size=32):
    """Top-1 and top-5 of several models on an image folder (a path, or an ``ImageFolder``), and against a
    reference model: agreement and differences of the class probabilities (whether each outputs logits or
    probabilities). A list of dicts, one per model.

    Images are prepared once, by the evaluation pipeline of training (resize,
    centre crop) with the first model's facts, and the reference runs once per
    batch however many models are compared with it; so every model must take
    the same input size, crop and interpolation. ``limit`` evaluates that many
    images spread evenly over the folder (so over every class), not the first ones.
    """
    from keras_mobilevitv2.data import ImageFolder, make_eval_dataset, scan_image_folder
    from keras_mobilevitv2.progress import ProgressLine

    paths = [os.fspath(path) for path in model_paths]
    classifiers = [load_classifier(path) for path in paths]
    other = load_classifier(reference) if reference else None
    first = classifiers[0]

    def preparation(c):
        return tuple(c.input_size), c.facts["crop_fraction"], c.facts.get("interpolation", "bicubic")

    for path, classifier in zip(paths[1:], classifiers[1:]):
        if preparation(classifier) != preparation(first):
            raise ValueError(f"{path} and {paths[0]} take images of other sizes or prepared otherwise "
                             f"({preparation(classifier)} against {preparation(first)}): evaluate them one at a time")
    if other is not None and tuple(other.input_size) != tuple(first.input_size):
        raise ValueError(f"{reference} takes {other.input_size} images and {paths[0]} "
                         f"{first.input_size}: compare models of one input size")
    size, crop_fraction, interpolation = preparation(first)
    if isinstance(data_dir, ImageFolder):  # already scanned (a held-out split of one)
        folder = data_dir
    else:
        folder = scan_image_folder(os.fspath(data_dir), class_names=first.facts.get("class_names"),
                                   progress=progress)
    if limit is not None and limit < len(folder):
        folder = folder.subset(np.unique(np.linspace(0, len(folder) - 1, limit).round().astype(int)))
    count = len(folder)
    dataset = make_eval_dataset(folder, size, batch_size, crop_fraction, cache_bytes=0, interpolation=interpolation)
    top1, top5, agree = np.zeros(len(paths), int), np.zeros(len(paths), int), np.zeros(len(paths), int)
    differences = [[] for _ in paths]
    done = 0
    shown = ProgressLine(count, progress)
    for images, labels in dataset:
        images, labels = images.numpy(), np.argmax(labels.numpy(), axis=-1)
        expected = other.probabilities_batch(images) if other is not None else None
        for i, classifier in enumerate(classifiers):
            scores = classifier.scores_batch(images)
            order = np.argsort(-scores, axis=-1)
            top1[i] += int(np.sum(order[:, 0] == labels))
            top5[i] += int(np.sum(np.any(order[:, :5] == labels[:, np.newaxis], axis=-1)))
            if other is not None:
                agree[i] += int(np.sum(np.argmax(expected, axis=-1) == order[:, 0]))
                differences[i].append(np.abs(expected - as_probabilities(scores, classifier.output_kind)))
        done += len(labels)
        if progress:
            scores = "  ".join(f"{os.path.basename(path)} {top1[i] / done:.2%}" for i, path in enumerate(paths))
            shown.update(done, f"evaluating {done}/{count}: top-1 {scores}")
    shown.close()
    results = []
    for i, path in enumerate(paths):
        result = {"model": path, "images": count, "top1": float(top1[i] / count), "top5": float(top5[i] / count)}
        if other is not None:
            stacked = np.concatenate(differences[i])
            result.update(reference=os.fspath(reference), top1_agreement=float(agree[i] / count),
                          max_probability_difference=float(stacked.max()),
                          mean_probability_difference=float(stacked.mean()))
        results.append(result)
    return results


# ---------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------

class TFLiteSegmenter:
    """A ``.tflite`` segmentation model from ``convert``: its fixed input size takes the whole image (resized,
    as the model's facts say). ``logits`` are the file's output (at the input size, or at the head's
    resolution for ``--outputs head-logits``); a file that outputs the category mask (``mask``) gives
    ``category_mask`` instead, and ``evaluation.predict_mask`` takes either."""

    def __init__(self, path, num_threads=None):
        read_facts(path, task="segmentation")
        self.runner = TFLiteClassifier(path, num_threads)
        self.facts = self.runner.facts
        self.outputs_mask = self.facts.get("outputs") == "mask"

    @property
    def class_names(self):
        return self.facts.get("class_names")

    def _output(self, image):
        from keras_mobilevitv2.data import resize_image

        size = list(self.runner.input_size)
        resized = image if list(image.shape[:2]) == size else resize_image(
            image, size, self.facts.get("interpolation", "bicubic")).numpy()
        return self.runner.scores(resized)

    def logits(self, image):
        if self.outputs_mask:
            raise ValueError("this file outputs the category mask (convert --outputs logits for logits)")
        return self._output(image)

    def category_mask(self, image):
        """The class of every pixel at the input size (a file of ``--outputs mask``)."""
        return np.round(self._output(image)).astype(np.int32)


def load_segmenter(path, num_threads=None):
    """A ``.keras`` (``KerasSegmenter``) or ``.tflite`` (``TFLiteSegmenter``) segmentation model."""
    from keras_mobilevitv2.evaluation import KerasSegmenter

    path = os.fspath(path)
    if path.endswith(".tflite"):
        return TFLiteSegmenter(path, num_threads)
    from .convert import load_keras_model

    return KerasSegmenter.load(load_keras_model(path))


def model_task(path):
    """"classification", "segmentation" or "detection": what a ``.keras`` or ``.tflite`` file of this kit holds."""
    path = os.fspath(path)
    if path.endswith(".tflite"):
        return read_facts(path).get("task", "classification")
    from keras_mobilevitv2 import get_preprocessing

    from .convert import load_keras_model

    return get_preprocessing(load_keras_model(path)).task


def evaluate_segmentation_model(model_path, data_dir, split="val", limit=None, progress=True):
    """cvnets' segmentation evaluation (``keras_mobilevitv2.evaluation``) of a ``.keras`` or ``.tflite`` file on
    ``split`` of a segmentation data folder: mIoU, pixel accuracy, per-class IoU."""
    from keras_mobilevitv2.data import scan_segmentation_data, segmentation_splits
    from keras_mobilevitv2.evaluation import evaluate_segmentation

    segmenter = load_segmenter(model_path)
    names = segmenter.class_names
    splits = segmentation_splits(data_dir)
    if split not in splits:
        split = splits[0] if len(splits) == 1 else split
    data = scan_segmentation_data(os.fspath(data_dir), split, class_names=names, progress=progress)
    result = evaluate_segmentation(segmenter, data, names, limit=limit, progress=progress)
    return {"model": os.fspath(model_path), "data": os.fspath(data_dir), "split": data.split, **result}


def overlay(image, mask, palette, alpha=0.5):
    """The classes of ``mask`` in ``palette``'s colours blended over ``image`` (uint8 RGB)."""
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)[np.clip(mask, 0, 255)]
    return np.round(image * (1 - alpha) + colours * alpha).astype(np.uint8)


def predict_segmentation(model_path, image_paths, out_dir, overwrite=False):
    """Writes ``NAME_mask.png`` (class indices at the image's size, a palette PNG) and ``NAME_overlay.png``
    (the classes in colour over the image) for every image into ``out_dir``; returns
    ``[(image, mask path, overlay path, {class name: share of pixels})]``."""
    from PIL import Image

    from keras_mobilevitv2.data.segmentation import voc_palette
    from keras_mobilevitv2.evaluation import predict_mask
    from keras_mobilevitv2.files import atomic_output, check_output_path

    segmenter = load_segmenter(model_path)
    names = segmenter.class_names or [str(i) for i in range(1 << 16)]
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stems = [os.path.splitext(os.path.basename(os.fspath(p)))[0] for p in image_paths]
    if len(set(stems)) != len(stems):
        raise ValueError("two images have the same name: their masks would overwrite each other")
    outputs = [(os.path.join(out_dir, f"{stem}_mask.png"), os.path.join(out_dir, f"{stem}_overlay.png"))
               for stem in stems]
    for pair in outputs:
        for path in pair:
            check_output_path(path, overwrite, inputs=image_paths)
    palette = voc_palette()
    results = []
    for path, (mask_path, overlay_path) in zip(image_paths, outputs):
        image = _read_rgb(path)
        mask = predict_mask(segmenter, image)
        picture = Image.fromarray(mask.astype(np.uint8), mode="P")
        picture.putpalette(palette)
        with atomic_output(mask_path) as temporary:
            picture.save(temporary, format="PNG")
        with atomic_output(overlay_path) as temporary:
            Image.fromarray(overlay(image, mask, palette)).save(temporary, format="PNG")
        counts = np.bincount(mask.ravel(), minlength=len(names))
        shares = {names[k]: float(counts[k] / mask.size) for k in np.flatnonzero(counts)}
        results.append((os.fspath(path), mask_path, overlay_path, shares))
    return results


def _read_rgb(path):
    """An image file as uint8 RGB [H, W, 3], decoded as training decodes it; ValueError naming a bad file."""
    import tensorflow as tf

    from keras_mobilevitv2.data.folders import inspect_image
    from keras_mobilevitv2.data.pipeline import decode_file

    try:
        native, _ = inspect_image(path)
    except Exception as error:  # noqa: BLE001 - the one-line reason is what the user needs
        raise ValueError(f"{path}: cannot read the image ({error})") from None
    return decode_file(tf.constant(os.fspath(path)), tf.constant(native)).numpy()


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------

class TFLiteDetector:
    """A ``.tflite`` detector from ``convert``. With the post-processing in the file (its facts' ``outputs``:
    "detections"), ``detections(image)`` are the file's; with the raw outputs (``box_regressions``,
    ``class_logits``, found by name), ``raw_outputs(image)`` are, and ``keras_mobilevitv2.evaluation.detect``
    post-processes them as the Keras model's."""

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        from .detection_postprocess import OUTPUTS

        path = os.fspath(path)
        self.facts = read_facts(path, task="detection")
        self.postprocessed = self.facts.get("outputs") == "detections"
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        signature = self.interpreter.get_signature_list()["serving_default"]
        expected = set(OUTPUTS) if self.postprocessed else {"box_regressions", "class_logits"}
        if not expected <= set(signature["outputs"]):
            raise ValueError(f"{path}: expected the outputs {', '.join(sorted(expected))}, "
                             f"found {signature['outputs']}")
        self.input_name = signature["inputs"][0]
        detail = self.runner.get_input_details()[self.input_name]
        self.input_detail = detail
        self.input_size = tuple(int(s) for s in detail["shape"][1:3])

    @property
    def class_names(self):
        return self.facts.get("class_names")

    @property
    def architecture(self):
        return self.facts.get("architecture")

    def _run(self, image):
        from keras_mobilevitv2.evaluation import prepare_detection_image

        x = prepare_detection_image(image, self.input_size, self.facts.get("interpolation", "bicubic"))
        x = x[np.newaxis] * (self.facts["input_max"] / 255.0)
        outputs = self.runner(**{self.input_name: quantize_input(x, self.input_detail)})
        details = self.runner.get_output_details()
        return {name: dequantize_output(value[0], details[name]) for name, value in outputs.items()}

    def raw_outputs(self, image):
        """``(box_regressions [A, 4], class_logits [A, classes + 1])`` of a file with the raw outputs."""
        if self.postprocessed:
            raise ValueError("this file outputs final detections (convert --outputs raw for the raw outputs)")
        outputs = self._run(image)
        return outputs["box_regressions"], outputs["class_logits"]

    def detections(self, image):
        """The file's detections: ``{"boxes": [n, 4] normalised x1 y1 x2 y2, "labels": [n] class ids
        1..classes (the Keras post-processing's), "confidence": [n]}``, best first."""
        outputs = self._run(image)
        count = int(round(float(np.ravel(outputs["num_detections"])[0])))
        ymin, xmin, ymax, xmax = np.moveaxis(outputs["boxes"][:count], -1, 0)
        return {"boxes": np.stack([xmin, ymin, xmax, ymax], axis=-1),
                "labels": np.round(outputs["classes"][:count]).astype(np.int64) + 1,
                "confidence": outputs["scores"][:count]}


def load_detector(path, num_threads=None):
    """A ``.keras`` (``KerasDetector``) or ``.tflite`` (``TFLiteDetector``) detector."""
    from keras_mobilevitv2.evaluation import KerasDetector

    path = os.fspath(path)
    if path.endswith(".tflite"):
        return TFLiteDetector(path, num_threads)
    from .convert import load_keras_model

    return KerasDetector.load(load_keras_model(path))


def evaluate_detection_model(model_path, data, annotations=None, split="val", limit=None, progress=True):
    """cvnets' COCO evaluation of a ``.keras`` or ``.tflite`` detector on a COCO (``data`` images folder +
    ``annotations``) or Pascal VOC set: AP, AP50, AP75, AP small / medium / large, ARs."""
    from keras_mobilevitv2.evaluation import evaluate_detection
    from keras_mobilevitv2.training.tasks import load_detection_data

    detector = load_detector(model_path)
    source = load_detection_data(data, annotations, split, progress=progress)
    names = detector.class_names
    if names is not None and tuple(names) != tuple(source.class_names[1:]):
        raise ValueError(f"{data}: its classes {list(source.class_names[1:])} are not the model's {list(names)}")
    result = evaluate_detection(detector, source, limit=limit, progress=progress)
    return {"model": os.fspath(model_path), "data": os.fspath(data), **result}


def draw_detections(image, detections, names):
    """``image`` with each detection's box and "label score" drawn (uint8 RGB)."""
    from PIL import Image, ImageDraw

    from keras_mobilevitv2.data.segmentation import voc_palette

    palette = np.asarray(voc_palette(), np.uint8).reshape(-1, 3)
    picture = Image.fromarray(np.asarray(image, np.uint8))
    draw = ImageDraw.Draw(picture)
    width = max(1, round(min(picture.size) / 200))
    for box, label, score in zip(detections["boxes"], detections["labels"], detections["scores"]):
        colour = tuple(int(c) for c in palette[1 + (int(label) - 1) % 20])
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        text = f"{names[int(label) - 1]} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text)
        draw.rectangle([left, top - (bottom - top) - 2, right + 2, top], fill=colour)
        draw.text((x1 + 1, top - (bottom - top) - 2), text, fill=(255, 255, 255))
    return np.asarray(picture)


def predict_detections(model_path, image_paths, out_dir, score_threshold=0.3, overwrite=False):
    """Writes ``NAME.json`` (``{"image", "width", "height", "detections": [{"label", "class_id", "score",
    "box": [x1, y1, x2, y2]}]}``, boxes in the image's pixels) and ``NAME_boxes.png`` for every image into
    ``out_dir``; returns ``[(image, json path, picture path, detections)]``."""
    from PIL import Image

    from keras_mobilevitv2.evaluation import detect
    from keras_mobilevitv2.files import atomic_output, check_output_path, write_json

    detector = load_detector(model_path)
    names = list(detector.class_names or [])
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stems = [os.path.splitext(os.path.basename(os.fspath(p)))[0] for p in image_paths]
    if len(set(stems)) != len(stems):
        raise ValueError("two images have the same name: their results would overwrite each other")
    outputs = [(os.path.join(out_dir, f"{stem}.json"), os.path.join(out_dir, f"{stem}_boxes.png")) for stem in stems]
    for pair in outputs:
        for path in pair:
            check_output_path(path, overwrite, inputs=image_paths)
    results = []
    for path, (json_path, picture_path) in zip(image_paths, outputs):
        image = _read_rgb(path)
        found = detect(detector, image, score_threshold=score_threshold)
        if not names:
            names = [str(k) for k in range(1, int(found["labels"].max(initial=0)) + 1)]
        detections = [{"label": names[int(label) - 1], "class_id": int(label), "score": float(score),
                       "box": [float(v) for v in box]}
                      for box, label, score in zip(found["boxes"], found["labels"], found["scores"])]
        write_json(json_path, {"image": os.path.basename(os.fspath(path)), "width": int(image.shape[1]),
                               "height": int(image.shape[0]), "detections": detections})
        with atomic_output(picture_path) as temporary:
            Image.fromarray(draw_detections(image, found, names)).save(temporary, format="PNG")
        results.append((os.fspath(path), json_path, picture_path, detections))
    return results
