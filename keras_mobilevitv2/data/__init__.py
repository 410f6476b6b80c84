"""Data: image folders and TFRecords -> tf.data pipelines with the recipe's augmentation."""

from .augment import AugmentConfig, Augmenter, center_crop, random_resized_crop, resize_image
from .folders import DataError, ImageFolder, has_train_val_split, scan_image_folder, split_folder
from .pipeline import (TFRecordSource, decode_file, make_eval_dataset, make_multi_scale_dataset, make_train_dataset,
                       multi_scale_schedule, steps_per_epoch)
from .sample import make_sample_data
from .tfrecords import is_tfrecord_dir, load_tfrecords, make_tfrecords

__all__ = [
    "AugmentConfig", "Augmenter", "DataError", "ImageFolder", "TFRecordSource", "center_crop", "decode_file",
    "has_train_val_split", "is_tfrecord_dir", "load_tfrecords", "make_eval_dataset", "make_sample_data",
    "make_multi_scale_dataset", "make_tfrecords", "make_train_dataset", "multi_scale_schedule", "random_resized_crop", "resize_image", "scan_image_folder",
    "split_folder", "steps_per_epoch",
]
