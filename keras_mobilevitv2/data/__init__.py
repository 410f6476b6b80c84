"""Data: image folders, TFRecords and image / mask pairs -> tf.data pipelines with the recipes' augmentation."""

from .augment import AugmentConfig, Augmenter, center_crop, random_resized_crop, resize_image
from .folders import DataError, ImageFolder, has_train_val_split, scan_image_folder, split_folder
from .pipeline import (TFRecordSource, decode_file, make_eval_dataset, make_multi_scale_dataset, make_train_dataset,
                       multi_scale_schedule, steps_per_epoch)
from .sample import make_sample_data
from .sample_segmentation import make_segmentation_sample_data
from .segmentation import (ADE20K_CLASS_NAMES, IGNORE_LABEL, VOC_CLASS_NAMES, SegmentationSet, load_segmentation_pair,
                           scan_segmentation_data, segmentation_splits, split_segmentation_set)
from .segmentation_pipeline import (SegmentationAugmentConfig, make_segmentation_train_dataset,
                                    make_segmentation_val_dataset)
from .tfrecords import is_tfrecord_dir, load_tfrecords, make_tfrecords

__all__ = [
    "ADE20K_CLASS_NAMES", "AugmentConfig", "Augmenter", "DataError", "IGNORE_LABEL", "ImageFolder",
    "SegmentationAugmentConfig", "SegmentationSet", "TFRecordSource", "VOC_CLASS_NAMES", "center_crop", "decode_file",
    "has_train_val_split", "is_tfrecord_dir", "load_segmentation_pair", "load_tfrecords", "make_eval_dataset",
    "make_multi_scale_dataset", "make_sample_data", "make_segmentation_sample_data",
    "make_segmentation_train_dataset", "make_segmentation_val_dataset", "make_tfrecords", "make_train_dataset",
    "multi_scale_schedule", "random_resized_crop", "resize_image", "scan_image_folder", "scan_segmentation_data",
    "segmentation_splits", "split_folder", "split_segmentation_set", "steps_per_epoch",
]
