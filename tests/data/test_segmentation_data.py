"""Segmentation data: VOC, ADE20k and plain folders, the recipe's paired transforms, the digits-on-photos sample."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from keras_mobilevitv2.data.folders import DataError
from keras_mobilevitv2.data.sample_segmentation import (IMAGE_SIDES, digit_stroke, make_segmentation_sample_data,
                                                        paste_digits)
from keras_mobilevitv2.data.segmentation import (IGNORE_LABEL, load_segmentation_pair, scan_segmentation_data,
                                                 segmentation_splits, split_segmentation_set)
from keras_mobilevitv2.data.segmentation_pipeline import (SegmentationAugmentConfig, make_segmentation_train_dataset,
                                                          make_segmentation_val_dataset, random_crop)

# Colours unlike the classes' indices, so that reading colours instead of palette indices fails.
PALETTE = [value for index in range(256) for value in ((index * 37) % 256, (index * 91) % 256, 200)]
CLASS_COLOURS = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255), IGNORE_LABEL: (128, 128, 128)}


def save_mask(path, mask, palette=True):
    image = Image.fromarray(np.asarray(mask, np.uint8))
    if palette:
        image.putpalette(PALETTE)
    image.save(path)


def blocks(rng, height, width, values, cell=20):
    """A mask of random ``values`` in square cells, so that every class has an interior."""
    grid = rng.choice(values, size=(-(-height // cell), -(-width // cell)))
    return np.kron(grid, np.ones((cell, cell), np.int64))[:height, :width]


def photo(rng, height, width):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def skipped_names(data):
    return {os.path.basename(path) for path, _ in data.skipped}


def make_voc(root, rng):
    """VOCdevkit/VOC2012 with three good training pairs, one validation pair and every kind of bad pair."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(voc / sub)
    masks = {name: blocks(rng, 20, 24, [0, 1, 15, IGNORE_LABEL], cell=6) for name in ("a", "b", "c", "d")}
    masks["badlabel"] = np.full((20, 24), 30)
    masks["noimage"] = masks["broken"] = masks["a"]
    for name, mask in masks.items():
        save_mask(voc / "SegmentationClass" / f"{name}.png", mask)
    save_mask(voc / "SegmentationClass" / "badsize.png", np.zeros((10, 10)))
    for name in ("a", "b", "c", "d", "badlabel", "badsize", "nomask"):
        Image.fromarray(photo(rng, 20, 24)).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
    good = (voc / "JPEGImages" / "a.jpg").read_bytes()
    (voc / "JPEGImages" / "broken.jpg").write_bytes(good[: len(good) // 3])
    (voc / "ImageSets/Segmentation/train.txt").write_text(
        "a\nb\nc\nnoimage\nnomask\nbadsize\nbadlabel\nbroken\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("d\n")
    os.makedirs(voc / "list")  # cvnets' train_aug lists: image and mask paths
    (voc / "list/train_aug.txt").write_text("JPEGImages/b.jpg SegmentationClass/b.png\n"
                                            "/JPEGImages/c.jpg /SegmentationClass/c.png\n")
    return masks


@pytest.mark.parametrize("where", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_palette_indices_are_classes_and_bad_pairs_are_named(tmp_path, rng, where):
    masks = make_voc(tmp_path, rng)
    data = scan_segmentation_data(tmp_path / where, progress=False)
    assert data.layout == "voc" and data.num_classes == 21
    assert data.class_names[:3] == ("background", "aeroplane", "bicycle") and data.class_names[15] == "person"
    assert [os.path.basename(p) for p in data.image_paths] == ["a.jpg", "b.jpg", "c.jpg"]
    assert data.native_masks == (False,) * 3  # palette PNGs: TensorFlow would give their colours
    reasons = dict((os.path.basename(p), r) for p, r in data.skipped)
    assert set(reasons) == {"noimage.jpg", "nomask.jpg", "badsize.png", "badlabel.png", "broken.jpg"}
    assert "no such image" in reasons["noimage.jpg"] and "no mask" in reasons["nomask.jpg"]
    assert "mask is 10x10" in reasons["badsize.png"] and "24x20" in reasons["badsize.png"]
    assert reasons["badlabel.png"] == "mask values 30 are not classes (allowed: 0..20, 255)"
    report = data.report()
    assert report.startswith("5 unusable file(s)") and "broken.jpg" in report
    image, mask = load_segmentation_pair(data, 0)
    assert image.shape == (20, 24, 3) and image.dtype == np.uint8 and mask.dtype == np.int32
    np.testing.assert_array_equal(mask, masks["a"])
    assert segmentation_splits(tmp_path / where) == ("train", "train_aug", "val")
    val = scan_segmentation_data(tmp_path / where, "val", progress=False)
    assert len(val) == 1 and not val.skipped
    train_aug = scan_segmentation_data(tmp_path / where, "train_aug", progress=False)
    assert [os.path.basename(p) for p in train_aug.mask_paths] == ["b.png", "c.png"]


def test_ade20k_ignores_zero_and_shifts_the_rest(tmp_path, rng):
    ade = tmp_path / "ADEChallengeData2016"
    for sub in ("images/training", "annotations/training", "images/validation", "annotations/validation"):
        os.makedirs(ade / sub)
    raw = np.array([[0, 1, 2, 150]]).repeat(8, axis=0)
    for name, values in (("x1", raw), ("x2", raw[:, ::-1]), ("bad", raw + 1), ("orphan", raw)):
        save_mask(ade / "annotations/training" / f"{name}.png", values, palette=False)
    for name in ("x1", "x2", "bad", "lonely"):
        Image.fromarray(photo(rng, 8, 4)).save(ade / "images/training" / f"{name}.jpg")
    (ade / "images/training/notes.txt").write_text("not an image")
    data = scan_segmentation_data(tmp_path, progress=False)
    assert data.layout == "ade20k" and data.num_classes == 150
    assert data.class_names[0] == "wall" and data.class_names[7] == "bed" and data.class_names[-1] == "flag"
    assert len(data) == 2 and data.native_masks == (True, True)
    assert skipped_names(data) == {"bad.png", "lonely.jpg", "orphan.png", "notes.txt"}
    assert "mask values 151 are not classes (allowed: 0..150)" in data.report()
    _, mask = load_segmentation_pair(data, 0)
    np.testing.assert_array_equal(mask[0], [IGNORE_LABEL, 0, 1, 149])
    assert segmentation_splits(ade) == ("train", "val")
    with pytest.raises(DataError, match="no images/test and annotations/test"):
        scan_segmentation_data(ade, "test")


def make_plain(folder, rng, classes=None):
    """``folder/images`` + ``folder/masks``: grayscale and palette masks, and every kind of bad pair."""
    os.makedirs(folder / "images")
    os.makedirs(folder / "masks")
    if classes:
        (folder.parent / "classes.txt" if folder.name in ("train", "val") else folder / "classes.txt").write_text(
            "".join(f"{name}\n" for name in classes) + "\n")
    good = {"p1": blocks(rng, 16, 12, [0, 1], 4), "p2": blocks(rng, 16, 12, [0, 2, IGNORE_LABEL], 4)}
    save_mask(folder / "masks/p1.png", good["p1"], palette=False)
    save_mask(folder / "masks/p2.png", good["p2"], palette=True)
    save_mask(folder / "masks/high.png", np.full((16, 12), 5))
    Image.fromarray(photo(rng, 16, 12)).save(folder / "masks/rgb.png")
    Image.fromarray(np.zeros((16, 12), np.uint8)).save(folder / "masks/lossy.jpg")
    save_mask(folder / "masks/orphan.png", good["p1"])
    for name in ("p1", "p2", "high", "rgb", "lossy", "lonely"):
        Image.fromarray(photo(rng, 16, 12)).save(folder / "images" / f"{name}.png")
    return good


def test_plain_folders_with_and_without_class_names(tmp_path, rng):
    good = make_plain(tmp_path / "named", rng, classes=["bg", "cat", "dog"])
    data = scan_segmentation_data(tmp_path / "named", progress=False)
    assert data.layout == "folders" and data.class_names == ("bg", "cat", "dog")
    assert data.native_masks == (True, False)  # 8-bit grayscale natively, palette through Pillow
    reasons = dict((os.path.basename(p), r) for p, r in data.skipped)
    assert set(reasons) == {"high.png", "rgb.png", "lossy.jpg", "lossy.png", "lonely.png", "orphan.png"}
    assert "mode RGB" in reasons["rgb.png"] and "JPEG" in reasons["lossy.jpg"] and "0..2, 255" in reasons["high.png"]
    assert "no mask" in reasons["lonely.png"] and "no image" in reasons["orphan.png"]
    for index, name in enumerate(("p1", "p2")):
        np.testing.assert_array_equal(load_segmentation_pair(data, index)[1], good[name])

    make_plain(tmp_path / "unnamed", rng)
    data = scan_segmentation_data(tmp_path / "unnamed", progress=False)
    assert data.class_names == tuple(str(c) for c in range(6)) and "high.png" not in skipped_names(data)
    with pytest.raises(DataError, match="no val split"):
        scan_segmentation_data(tmp_path / "unnamed", "val")
    train, val = split_segmentation_set(data, 0.34, seed=1)
    assert len(train) == 2 and len(val) == 1 and set(train.image_paths) | set(val.image_paths) == set(data.image_paths)


def test_plain_train_and_val_splits(tmp_path, rng):
    make_plain(tmp_path / "train", rng, classes=["bg", "cat", "dog"])
    make_plain(tmp_path / "val", rng)
    assert segmentation_splits(tmp_path) == ("train", "val")
    train = scan_segmentation_data(tmp_path, "train", progress=False)
    val = scan_segmentation_data(tmp_path, "val", class_names=train.class_names, progress=False)
    assert val.class_names == ("bg", "cat", "dog") and len(val) == 2 and "high.png" in skipped_names(val)
    with pytest.raises(DataError, match="no test/images and test/masks"):
        scan_segmentation_data(tmp_path, "test")


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "no such data folder"),
    (lambda root: os.makedirs(root / "photos"), "not a segmentation data folder: expected PASCAL VOC"),
    (lambda root: (os.makedirs(root / "images"), os.makedirs(root / "masks")), "no image and mask pairs found"),
    (lambda root: (os.makedirs(root / "images"), os.makedirs(root / "masks"), (root / "images/x.jpg").write_text("x"),
                   save_mask(root / "masks/x.png", np.zeros((4, 4)))), "none of its 1 image and mask pairs"),
    (lambda root: (os.makedirs(root / "JPEGImages"), os.makedirs(root / "ImageSets/Segmentation")),
     "no ImageSets/Segmentation/train.txt"),
])
def test_unusable_folders_fail_at_once_in_one_line(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=message) as raised:
        scan_segmentation_data(root, progress=False)
    assert str(root) in str(raised.value) and "\n" not in str(raised.value)


def make_coloured(root, rng, count=8):
    """Images whose colour is their mask's class (``CLASS_COLOURS``), with ignored regions; PNG, so exact."""
    os.makedirs(root / "images")
    os.makedirs(root / "masks")
    for index in range(count):
        height, width = (80, 100) if index % 2 else (110, 84)
        mask = blocks(rng, height, width, [0, 1, 2, IGNORE_LABEL])
        image = np.zeros((height, width, 3), np.uint8)
        for label, colour in CLASS_COLOURS.items():
            image[mask == label] = colour
        Image.fromarray(image).save(root / "images" / f"{index}.png")
        save_mask(root / "masks" / f"{index}.png", mask, palette=bool(index % 2))
    return scan_segmentation_data(root, progress=False)


def batches(dataset):
    return [(images.numpy(), masks.numpy()) for images, masks in dataset]


def test_training_pairs_stay_aligned_through_the_recipe(tmp_path, rng):
    data = make_coloured(tmp_path / "coloured", rng)
    geometry = dataclasses.replace(SegmentationAugmentConfig.preset("recipe"), photometric=0.0)
    dataset, steps = make_segmentation_train_dataset(data, (64, 80), 4, geometry, seed=5, epochs=2)
    out = batches(dataset)
    assert steps == 2 and len(out) == 4
    paddings = 0
    for images, masks in out:
        assert images.shape == (4, 64, 80, 3) and images.dtype == np.float32 and masks.dtype == np.int32
        assert images.min() >= 0 and images.max() <= 255 and set(np.unique(masks)) <= {0, 1, 2, IGNORE_LABEL}
        for image, mask in zip(images, masks):
            # 3 pixels from any other label and from the crop's border (where rotation blends in its black fill)
            low, high = (f(mask, 7, mode="constant", cval=-1) for f in (ndimage.minimum_filter, ndimage.maximum_filter))
            for label in (0, 1, 2):
                inside = (low == label) & (high == label)
                assert np.abs(image[inside] - CLASS_COLOURS[label]).max(initial=0) < 60, label
            ignored = image[low == IGNORE_LABEL]  # the ignored grey, padding's and rotation's black, or a mix
            assert np.all(np.ptp(ignored, axis=-1) < 30) and np.all(ignored < 170)
            paddings += np.all(ignored < 20, axis=-1).sum()
    assert paddings > 0

    # The same (seed, epoch) gives the same batches, from files or from memory; resuming at epoch 1 gives epoch 1.
    from_files = batches(make_segmentation_train_dataset(data, (64, 80), 4, geometry, seed=5, epochs=2,
                                                         cache_bytes=0)[0])
    resumed = batches(make_segmentation_train_dataset(data, (64, 80), 4, geometry, seed=5, start_epoch=1,
                                                      epochs=2)[0])
    for a, b in zip(out, from_files):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    for a, b in zip(out[2:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(out[0][1], out[2][1])

    # Photometric distortion changes colours only: same masks, same geometry.
    recipe = batches(make_segmentation_train_dataset(data, (64, 80), 4, "recipe", seed=5)[0])
    for a, b in zip(out[:2], recipe):
        np.testing.assert_array_equal(a[1], b[1])
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(out[:2], recipe))


def test_small_images_are_padded_with_the_ignore_label(tmp_path, rng):
    data = make_coloured(tmp_path / "coloured", rng, count=2)
    crop_only = SegmentationAugmentConfig(short_side_scale=None, horizontal_flip=False, gaussian_blur=0.0,
                                          photometric=0.0, rotation=0.0)
    (images, masks), = batches(make_segmentation_train_dataset(data, (128, 120), 2, crop_only)[0])
    originals = {load_segmentation_pair(data, i)[1].shape: load_segmentation_pair(data, i) for i in range(2)}
    assert len(originals) == 2
    for image, mask in zip(images, masks):  # the order is shuffled: the size of the unpadded (never black) part tells
        height, width = np.any(image[:, 0] > 0, axis=-1).sum(), np.any(image[0] > 0, axis=-1).sum()
        original, expected = originals[(height, width)]
        assert np.all(mask[height:] == IGNORE_LABEL) and np.all(mask[:, width:] == IGNORE_LABEL)
        assert np.all(image[height:] == 0) and np.all(image[:, width:] == 0)
        np.testing.assert_array_equal(mask[:height, :width], expected)
        np.testing.assert_array_equal(image[:height, :width], original)


def test_crops_retry_until_no_class_dominates():
    mask = np.zeros((40, 200), np.int32)
    mask[:20, 160:], mask[20:, 160:] = 1, 2  # only crops starting beyond column 130 are balanced
    image = tf.zeros((40, 200, 3))

    def balanced_share(max_ratio):
        crop = tf.function(lambda seed: random_crop(image, tf.constant(mask), (40, 40), seed, max_ratio)[1])
        crops = [crop(tf.constant([seed, 7])).numpy() for seed in range(40)]
        assert all(c.shape == (40, 40) for c in crops)
        return np.mean([np.mean(c == 0) < 0.75 for c in crops])

    assert balanced_share(0.75) > 0.6 > 0.4 > balanced_share(1.0)


def test_validation_pairs_are_resized_to_one_size(tmp_path, rng):
    data = make_coloured(tmp_path / "coloured", rng, count=3)
    out = batches(make_segmentation_val_dataset(data, (48, 40), 2))
    assert [images.shape for images, _ in out] == [(2, 48, 40, 3), (1, 48, 40, 3)]
    assert all(masks.shape[1:] == (48, 40) and set(np.unique(masks)) <= {0, 1, 2, IGNORE_LABEL} for _, masks in out)


def test_pasted_digits_are_exactly_their_masks(rng):
    background = np.full((100, 120, 3), 200, np.uint8)
    digit = np.zeros((8, 8))
    digit[1:7, 3:5] = 16  # a "1"
    image, mask = paste_digits(background, [digit], [1], rng, count=1)
    painted = np.any(image != background, axis=-1)
    np.testing.assert_array_equal(mask > 0, painted)
    assert set(np.unique(mask)) == {0, 2}  # class 0 is the background, digit 1 is class 2
    rows, columns = np.flatnonzero(painted.any(axis=1)), np.flatnonzero(painted.any(axis=0))
    assert 20 <= rows[-1] - rows[0] + 1 <= 70 and len(np.unique(image[painted], axis=0)) == 1
    assert columns[-1] - columns[0] + 1 < rows[-1] - rows[0] + 1  # a "1": taller than wide
    assert digit_stroke(digit, 40, 40).sum() > 0


def test_sample_set_is_real_photos_with_digit_masks(tmp_path):
    counts = make_segmentation_sample_data(tmp_path / "sample", digit_classes=2, train_count=10, val_count=4, seed=3)
    assert counts == {"train": 10, "val": 4, "classes": 3}
    assert (tmp_path / "sample/classes.txt").read_text() == "background\nzero\none\n"
    train = scan_segmentation_data(tmp_path / "sample", progress=False)
    val = scan_segmentation_data(tmp_path / "sample", "val", class_names=train.class_names, progress=False)
    assert len(train) == 10 and len(val) == 4 and not train.skipped and not val.skipped
    shapes = set()
    for index in range(len(train)):
        image, mask = load_segmentation_pair(train, index)
        shapes.add(mask.shape)
        assert all(IMAGE_SIDES[0] <= side <= IMAGE_SIDES[1] for side in mask.shape)
        assert set(np.unique(mask)) >= {0} and mask.max() > 0
        inside = ndimage.binary_erosion(mask > 0)
        ring = ndimage.binary_dilation(mask > 0, iterations=2) & ~ndimage.binary_dilation(mask > 0)
        contrast = np.linalg.norm(image[inside].mean(axis=0) - image[ring].mean(axis=0))
        assert contrast > 60, index  # the mask's edge is the painted stroke's edge
    assert any(h != w for h, w in shapes)

    with pytest.raises(FileExistsError):
        make_segmentation_sample_data(tmp_path / "sample")
    first = load_segmentation_pair(train, 0)[1]
    make_segmentation_sample_data(tmp_path / "sample", overwrite=True, digit_classes=2, train_count=6, val_count=4,
                                  seed=3)
    assert len(os.listdir(tmp_path / "sample/train/masks")) == 6
    np.testing.assert_array_equal(load_segmentation_pair(train, 0)[1], first)  # the seed decides every file
