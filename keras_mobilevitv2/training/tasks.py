"""What training needs to know of each task: its data, model, loss, metrics and the figure that picks the best.

``train`` (``train.py``) is the same loop for every task; it asks the task
object for the pieces that differ. A task object holds no state of a run.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from .. import data as data_lib
from ..models import create_model, get_entry
from ..weights.layouts import is_backbone_layer


def _no_annotations(annotations, val_annotations, task):
    if annotations is not None or val_annotations is not None:
        raise ValueError(f"--annotations and --val-annotations are for detection, not {task}")


class ClassificationTask:
    """Image folders or TFRecords, softmax cross-entropy with label smoothing, top-1 picks the best model."""

    name = "classification"
    monitor = "val_accuracy"
    curves = ("loss", "accuracy")
    log_names = {}

    def load_data(self, data, config, val_data=None, progress=True, annotations=None, val_annotations=None):
        """``(train, val)`` sources from an image folder (split or not) or TFRecords; val may be None."""
        _no_annotations(annotations, val_annotations, self.name)
        data = os.fspath(data)
        if data_lib.is_tfrecord_dir(data):
            train = data_lib.load_tfrecords(data, "train")
            val = data_lib.load_tfrecords(data, "val")
        elif data_lib.has_train_val_split(data) and val_data is None:
            train = data_lib.scan_image_folder(os.path.join(data, "train"), progress=progress)
            val = data_lib.scan_image_folder(os.path.join(data, "val"), train.class_names, progress=progress)
        else:
            train = data_lib.scan_image_folder(data, progress=progress)
            val = None
        if val_data is not None:
            val = (data_lib.load_tfrecords(val_data, "val") if data_lib.is_tfrecord_dir(val_data)
                   else data_lib.scan_image_folder(val_data, train.class_names, progress=progress))
        elif val is None and config.val_split > 0 and isinstance(train, data_lib.ImageFolder):
            skipped = train.skipped
            train, val = data_lib.split_folder(train, config.val_split, config.seed)
            train = dataclasses.replace(train, skipped=skipped)
        return train, val

    def data_summary(self, source):
        if isinstance(source, data_lib.ImageFolder):
            counts = source.class_counts().tolist()
        else:
            counts = ["?"] * len(source.class_names)
        return f"{len(source)} images ({', '.join(f'{n}: {c}' for n, c in zip(source.class_names, counts))})"

    def class_names(self, source):
        return tuple(source.class_names)

    def callbacks(self, source, config, model):
        return []

    def build_model(self, config, class_names, input_shape, training):
        return create_model(config.model, input_shape=input_shape, classes=len(class_names), class_names=class_names,
                            classifier_activation=None)

    def head_layers(self, model):
        return [layer for layer in model.layers if layer.name == "predictions"]

    def compile_arguments(self, config, class_names):
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if len(class_names) > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
        return dict(loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                              label_smoothing=config.label_smoothing),
                    metrics=metrics)

    def train_dataset(self, source, config, start_epoch):
        augment = config.augment_config()
        if config.multi_scale:
            return data_lib.make_multi_scale_dataset(
                source, config.input_size[0], config.batch_size, augment, config.seed, start_epoch, config.epochs,
                config.deterministic, config.cache_bytes)
        return data_lib.make_train_dataset(
            source, config.input_size, config.batch_size, augment, config.seed, start_epoch, config.epochs,
            config.deterministic, config.cache_bytes)

    def val_dataset(self, source, config, facts):
        return data_lib.make_eval_dataset(source, config.input_size, config.batch_size, facts.crop_fraction,
                                          config.cache_bytes)


class SegmentationTask:
    """Image / mask pairs, pixel cross-entropy ignoring ``IGNORE_LABEL`` (plus the auxiliary head's, weighted
    as cvnets weighs it), mean IoU picks the best model."""

    name = "segmentation"
    monitor = "val_miou"
    curves = ("loss", "miou")
    # Keras prefixes a metric of one output of a model with several by the output's name.
    log_names = {"logits_miou": "miou", "val_logits_miou": "val_miou"}

    def load_data(self, data, config, val_data=None, progress=True, annotations=None, val_annotations=None):
        """``(train, val)`` pairs: the layout's train and val splits, ``val_data``, or ``config.val_split`` of train."""
        _no_annotations(annotations, val_annotations, self.name)
        from ..data.segmentation import scan_segmentation_data, segmentation_splits, split_segmentation_set

        data = os.fspath(data)
        train = scan_segmentation_data(data, "train", progress=progress)
        if val_data is not None:
            splits = segmentation_splits(val_data)
            val = scan_segmentation_data(val_data, "val" if "val" in splits else splits[0], train.class_names,
                                         progress=progress)
        elif "val" in segmentation_splits(data):
            val = scan_segmentation_data(data, "val", train.class_names, progress=progress)
        elif config.val_split > 0:
            skipped = train.skipped
            train, val = split_segmentation_set(train, config.val_split, config.seed)
            train = dataclasses.replace(train, skipped=skipped)
        else:
            val = None
        return train, val

    def data_summary(self, source):
        return f"{len(source)} images and masks, {len(source.class_names)} classes ({', '.join(source.class_names)})"

    def class_names(self, source):
        return tuple(source.class_names)

    def callbacks(self, source, config, model):
        return []

    def build_model(self, config, class_names, input_shape, training):
        settings = {} if config.output_stride is None else {"output_stride": config.output_stride}
        return create_model(config.model, input_shape=input_shape, classes=len(class_names), class_names=class_names,
                            aux_head=training and config.aux_loss_weight > 0, **settings)

    def head_layers(self, model):
        return [layer for layer in model.layers if layer.weights and not is_backbone_layer(layer.name)]

    def compile_arguments(self, config, class_names):
        from ..data.segmentation import IGNORE_LABEL

        loss = SegmentationCrossEntropy(IGNORE_LABEL, config.label_smoothing)
        miou = keras.metrics.MeanIoU(num_classes=len(class_names), name="miou", ignore_class=IGNORE_LABEL,
                                     sparse_y_pred=False)
        if config.aux_loss_weight <= 0:
            return dict(loss=loss, metrics=[miou])
        return dict(loss={"logits": loss, "aux_logits": SegmentationCrossEntropy(IGNORE_LABEL, config.label_smoothing,
                                                                                 name="aux_cross_entropy")},
                    loss_weights={"logits": 1.0, "aux_logits": config.aux_loss_weight},
                    metrics={"logits": [miou]})

    def _targets(self, dataset, config):
        if config.aux_loss_weight <= 0:
            return dataset
        return dataset.map(lambda images, masks: (images, {"logits": masks, "aux_logits": masks}))

    def train_dataset(self, source, config, start_epoch):
        from ..data.segmentation_pipeline import make_segmentation_train_dataset

        if config.multi_scale:
            raise ValueError("--multi-scale is MobileViT v1's classification sampler; segmentation trains on crops")
        dataset, steps = make_segmentation_train_dataset(
            source, config.input_size, config.batch_size, config.augment_config(), config.seed, start_epoch,
            config.epochs, config.cache_bytes)
        return self._targets(dataset, config), steps

    def val_dataset(self, source, config, facts):
        from ..data.segmentation_pipeline import make_segmentation_val_dataset

        return self._targets(make_segmentation_val_dataset(source, config.input_size, config.batch_size,
                                                           config.cache_bytes), config)


def load_detection_data(data, annotations=None, split="train", progress=True):
    """A ``DetectionSource``: COCO JSON (``data`` the images' folder, ``annotations`` the file), Pascal VOC
    (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``, also inside ``VOCdevkit/VOC20xx``), or
    this kit's sample layout (``data/<split>/images`` + ``data/<split>/annotations.json``)."""
    from ..data.detection import scan_coco, scan_voc
    from ..data.folders import DataError

    data = os.fspath(data)
    if annotations is not None:
        return scan_coco(data, annotations, progress=progress)
    for root in (data, *(os.path.join(data, name) for name in ("VOC2012", "VOC2007", "VOCdevkit/VOC2012",
                                                               "VOCdevkit/VOC2007"))):
        if os.path.isdir(os.path.join(root, "ImageSets", "Main")):
            return scan_voc(root, split, progress=progress)
    folder = os.path.join(data, split)
    if os.path.isfile(os.path.join(folder, "annotations.json")):
        return scan_coco(os.path.join(folder, "images"), os.path.join(folder, "annotations.json"), progress=progress)
    raise DataError(f"{data}: not a detection data set: give the COCO annotations (--annotations FILE), or a Pascal "
                    f"VOC folder (Annotations/, JPEGImages/, ImageSets/Main/), or {split}/images + "
                    f"{split}/annotations.json")


class DetectionTask:
    """COCO JSON or Pascal VOC boxes, anchors matched in the pipeline, cvnets' multibox loss; COCO AP on the
    validation images (after each epoch, with the EMA weights) picks the best model."""

    name = "detection"
    monitor = "val_map"
    curves = ("loss", "map")
    log_names = {}

    def load_data(self, data, config, val_data=None, progress=True, annotations=None, val_annotations=None):
        train = load_detection_data(data, annotations, "train", progress)
        if val_data is not None or val_annotations is not None:
            val = load_detection_data(val_data or data, val_annotations, "val", progress)
        else:
            try:
                val = load_detection_data(data, None, "val", progress) if annotations is None else None
            except ValueError:  # no val split: a share of the training images
                val = None
            if val is None and config.val_split > 0:
                order = np.random.default_rng(config.seed).permutation(len(train))
                count = min(max(int(round(len(train) * config.val_split)), 1), len(train) - 1)
                skipped = train.skipped
                train, val = train.subset(sorted(order[count:])), train.subset(sorted(order[:count]))
                train = dataclasses.replace(train, skipped=skipped)
        if val is not None and list(val.class_names) != list(train.class_names):
            raise ValueError(f"the validation classes {list(val.class_names)[1:]} are not the training classes "
                             f"{list(train.class_names)[1:]}")
        return train, val

    def data_summary(self, source):
        boxes = sum(int((~np.asarray(source.ignored[i])).sum()) for i in range(len(source)))
        return f"{len(source)} images, {boxes} boxes, {len(source.class_names) - 1} classes " \
               f"({', '.join(source.class_names[1:])})"

    def class_names(self, source):
        return tuple(source.class_names[1:])  # the model's names leave the background out

    def build_model(self, config, class_names, input_shape, training):
        model = create_model(config.model, input_shape=input_shape, classes=len(class_names), class_names=class_names)
        return DetectorTrainer(model) if training else model

    def head_layers(self, model):
        return [layer for layer in model.layers if layer.weights and not is_backbone_layer(layer.name)]

    def compile_arguments(self, config, class_names):
        return {}  # the loss is the trainer's (compute_loss)

    def train_dataset(self, source, config, start_epoch):
        from ..data.detection_pipeline import make_detection_train_dataset

        if config.multi_scale:
            raise ValueError("--multi-scale is MobileViT v1's classification sampler; detection trains at one size")
        from ..detection import ssd_anchors

        anchors = ssd_anchors(*config.input_size, architecture=get_entry(config.model).architecture)
        return make_detection_train_dataset(source, config.input_size, config.batch_size, config.augment_config(),
                                            config.seed, start_epoch, config.epochs, anchors=anchors)

    def val_dataset(self, source, config, facts):
        return None  # no validation loss: COCO AP, by ``callbacks``

    def callbacks(self, source, config, model):
        return [CocoValidation(model, source, config.input_size, config.batch_size)] if source is not None else []


class DetectorTrainer(keras.Model):
    """A detector for ``fit``: the multibox loss needs both outputs at once, which Keras' per-output losses
    cannot give it. Shares its layers (and so its weights) with the detector it wraps; the box and class
    terms are logged as ``box_loss`` and ``class_loss``."""

    def __init__(self, detector, **kwargs):
        super().__init__(inputs=detector.input, outputs=detector.output, name=detector.name, **kwargs)
        from ..detection import MultiboxLoss

        self.multibox = MultiboxLoss()
        self.box_loss_tracker = keras.metrics.Mean(name="box_loss")
        self.class_loss_tracker = keras.metrics.Mean(name="class_loss")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        from ..detection import multibox_terms

        box_loss, class_loss = multibox_terms(y, y_pred, self.multibox.neg_pos_ratio)
        self.box_loss_tracker.update_state(box_loss)
        self.class_loss_tracker.update_state(class_loss)
        return box_loss + class_loss


class CocoValidation(keras.callbacks.Callback):
    """After each epoch: COCO AP, AP50 and AP75 of the model (with the EMA weights when EMA is on) on the
    validation images, cvnets' protocol, as ``val_map``, ``val_ap50``, ``val_ap75``."""

    def __init__(self, detector, source, image_size, batch_size):
        super().__init__()
        from ..backend import inference_function
        from ..data.detection_pipeline import make_detection_eval_dataset
        from ..models import inference_detector

        self.source = source
        self.ground_truth = source.to_coco()
        self.dataset = make_detection_eval_dataset(source, image_size, batch_size)
        self.inference = inference_function(inference_detector(detector))

    def on_epoch_end(self, epoch, logs=None):
        from ..detection import coco_evaluate, pixel_predictions

        predictions = []
        for images, info in self.dataset:
            predictions += pixel_predictions(self.inference(images), info)
        scores = coco_evaluate(predictions, self.ground_truth, self.source.category_ids)
        if logs is not None:
            logs.update(val_map=max(scores["AP"], 0.0), val_ap50=max(scores["AP50"], 0.0),
                        val_ap75=max(scores["AP75"], 0.0))


@keras.saving.register_keras_serializable(package="keras_mobilevitv2")
class SegmentationCrossEntropy(keras.losses.Loss):
    """cvnets' segmentation cross-entropy: logits at any resolution are resized to the mask's (bilinear,
    ``align_corners=True``), pixels whose label is not a class (``ignore_label``) are left out, and the
    loss is the mean over the remaining pixels of the batch."""

    def __init__(self, ignore_label=255, label_smoothing=0.0, name="cross_entropy", **kwargs):
        super().__init__(name=name, reduction="sum", **kwargs)
        self.ignore_label = int(ignore_label)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return segmentation_cross_entropy(y_true, y_pred, self.ignore_label, self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update(ignore_label=self.ignore_label, label_smoothing=self.label_smoothing)
        config.pop("reduction", None)
        return config


def segmentation_cross_entropy(y_true, y_pred, ignore_label=255, label_smoothing=0.0):
    """The loss of ``SegmentationCrossEntropy`` in TensorFlow ops (any Keras, tf_keras's QAT included): the mean
    pixel cross-entropy over the batch's pixels whose label is a class, logits resized to the labels' size."""
    logits = tf.cast(y_pred, tf.float32)
    labels = tf.cast(y_true, tf.int32)
    size = tf.shape(labels)[1:3]
    if logits.shape[1:3] != labels.shape[1:3] or None in labels.shape[1:3]:
        logits = tf.raw_ops.ResizeBilinear(images=logits, size=size, align_corners=True, half_pixel_centers=False)
    classes = tf.shape(logits)[-1]
    valid = (labels >= 0) & (labels < classes) & (labels != ignore_label)
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    targets = tf.one_hot(safe, classes)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / tf.cast(classes, tf.float32)
    pixel = tf.nn.softmax_cross_entropy_with_logits(targets, logits)
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(pixel * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


TASKS = {task.name: task for task in (ClassificationTask(), SegmentationTask(), DetectionTask())}


def get_task(name):
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}: {', '.join(TASKS)}") from None
