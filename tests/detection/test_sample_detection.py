"""The bundled detection sample: offline, deterministic, atomic, readable as COCO, with background-only images."""

import filecmp
import os

import pytest
import skimage

from keras_mobilevitv2.data.detection import scan_coco
from keras_mobilevitv2.data.sample_detection import BACKGROUNDS, make_detection_sample_data


def test_backgrounds_ship_with_scikit_image():
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    assert all(os.path.isfile(os.path.join(folder, name)) for name in BACKGROUNDS)


def test_sample_is_a_clean_coco_set_made_the_same_every_time(tmp_path):
    counts = make_detection_sample_data(tmp_path / "a", train_images=24, val_images=6, seed=3)
    assert counts == {"train": 24, "val": 6}
    make_detection_sample_data(tmp_path / "b", train_images=24, val_images=6, seed=3)
    comparison = filecmp.dircmp(tmp_path / "a" / "train", tmp_path / "b" / "train")
    assert comparison.diff_files == [] and comparison.left_only == comparison.right_only == []
    assert filecmp.cmpfiles(tmp_path / "a" / "train" / "images", tmp_path / "b" / "train" / "images",
                            sorted(os.listdir(tmp_path / "a" / "train" / "images")), shallow=False)[1:] == ([], [])
    train = scan_coco(tmp_path / "a" / "train" / "images", tmp_path / "a" / "train" / "annotations.json")
    val = scan_coco(tmp_path / "a" / "val" / "images", tmp_path / "a" / "val" / "annotations.json")
    assert train.report() == "" and len(train) == 24 and len(val) == 6
    assert train.class_names == ("background", "0", "1", "4") and train.category_ids == (1, 2, 5)
    counts = [len(labels) for labels in train.labels]
    assert 0 in counts and max(counts) <= 3 and sum(counts) > 24
    for (height, width), boxes in zip(train.sizes, train.boxes):
        assert 160 <= min(height, width) and max(height, width) <= 320
        sides = (boxes[:, 2:] - boxes[:, :2]) * [width, height]
        assert (sides > 4).all() and (sides.max(axis=1) <= 0.5 * min(height, width) + 1).all()
    make_detection_sample_data(tmp_path / "c", train_images=24, val_images=1, seed=4)
    assert (tmp_path / "a" / "train" / "annotations.json").read_text() != (
        tmp_path / "c" / "train" / "annotations.json").read_text()


def test_sample_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        make_detection_sample_data(tmp_path, train_images=2, val_images=1)
    make_detection_sample_data(tmp_path, overwrite=True, train_images=2, val_images=1)
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "val" / "annotations.json").exists()
    assert not [name for name in os.listdir(tmp_path / "train" / "images") if "partial" in name]
    with pytest.raises(ValueError, match="digits must be among 0-9"):
        make_detection_sample_data(tmp_path / "new", digits=(3, 12))
