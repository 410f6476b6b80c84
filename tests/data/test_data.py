"""Image folders, decoding, TFRecords and the recipe's augmentation on tf.data."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_mobilevitv2.data import (AugmentConfig, DataError, center_crop, decode_file, load_tfrecords,
                                    make_multi_scale_dataset, make_sample_data, make_tfrecords,
                                    make_train_dataset, multi_scale_schedule, scan_image_folder, split_folder)
from keras_mobilevitv2.data.augment import Augmenter


def make_bad_folder(root, rng):
    """A folder with every kind of file a user's data has: good, odd and broken."""
    for name in ("cats", "dogs", "empty"):
        os.makedirs(root / name)
    pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    for i in range(6):
        Image.fromarray(np.roll(pixels, i, axis=0)).save(root / "cats" / f"rgb{i}.jpg", quality=95)
        Image.fromarray(np.roll(pixels, i, axis=1)).save(root / "dogs" / f"rgb{i}.png")
    good = (root / "cats" / "rgb0.jpg").read_bytes()
    (root / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "cats" / "zero.jpg").write_bytes(b"")
    (root / "cats" / "text.jpg").write_text("this is not an image")
    (root / "cats" / "notes.txt").write_text("not an image name either")
    Image.fromarray(pixels).convert("CMYK").save(root / "cats" / "cmyk.jpg", quality=95)
    Image.fromarray(pixels[..., 0]).save(root / "dogs" / "gray.png")
    wide = (pixels[..., 0].astype(np.uint16) * 257)
    Image.fromarray(wide).save(root / "dogs" / "sixteen.png")
    Image.fromarray(np.dstack([pixels, np.full(pixels.shape[:2], 128, np.uint8)])).save(root / "dogs" / "rgba.png")
    Image.fromarray(pixels).save(root / "dogs" / "pic.bmp")
    Image.fromarray(pixels).save(root / "dogs" / "pic.webp", lossless=True)
    Image.fromarray(pixels).save(root / "dogs" / "pic.gif")
    return pixels


def test_bad_files_are_skipped_and_named_the_rest_decode_to_rgb(tmp_path, rng):
    pixels = make_bad_folder(tmp_path, rng)
    folder = scan_image_folder(str(tmp_path))
    # a class folder without a readable image is no class of the model: left out and named
    assert folder.class_names == ("cats", "dogs") and folder.left_out == ("empty",)
    assert set(folder.labels) == {0, 1}
    skipped = {os.path.basename(p) for p, _ in folder.skipped}
    assert skipped == {"truncated.jpg", "zero.jpg", "text.jpg", "notes.txt"}
    report = folder.report()
    assert "4 unreadable file(s)" in report and "truncated.jpg" in report
    assert "without a readable image left out (the model gets 2 classes): empty" in report
    assert len(folder) == 6 + 1 + 6 + 6  # good jpgs + cmyk, good pngs + gray, 16-bit, rgba, bmp, webp, gif
    decoded = {os.path.basename(p): decode_file(tf.constant(p), tf.constant(n)).numpy()
               for p, n in zip(folder.paths, folder.native)}
    for name, image in decoded.items():
        assert image.shape == (20, 24, 3) and image.dtype == np.uint8, name
    for name in ("rgb0.png", "pic.bmp", "pic.webp"):
        np.testing.assert_array_equal(decoded[name], pixels)
    for name in ("gray.png", "sixteen.png"):
        np.testing.assert_array_equal(decoded[name], np.repeat(pixels[..., :1], 3, axis=2))
    np.testing.assert_array_equal(decoded["rgba.png"], pixels)
    assert np.abs(decoded["cmyk.jpg"].astype(int) - pixels).mean() < 12  # through JPEG and CMYK


def test_classes_with_few_images_are_named_and_a_validation_folder_keeps_the_training_classes(tmp_path, rng):
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for name, count in (("many", 6), ("few", 2), ("none", 0)):
        os.makedirs(tmp_path / name)
        for i in range(count):
            Image.fromarray(np.roll(pixels, i, axis=0)).save(tmp_path / name / f"{i}.png")
    folder = scan_image_folder(str(tmp_path))
    assert folder.class_names == ("few", "many") and folder.left_out == ("none",)
    assert "fewer than 5 images, which the model will hardly learn: few (2)" in folder.report()
    # validation: the training classes, even where this folder has none of them
    val = scan_image_folder(str(tmp_path), class_names=("few", "many", "none"))
    assert val.class_names == ("few", "many", "none") and val.left_out == ()
    # and the empty folder of a class the training folder left out is no unknown class
    assert scan_image_folder(str(tmp_path), class_names=folder.class_names).class_names == ("few", "many")
    Image.fromarray(pixels).save(tmp_path / "none" / "0.png")
    with pytest.raises(DataError, match="classes not in the training set: none"):
        scan_image_folder(str(tmp_path), class_names=folder.class_names)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "no such data folder"),
    (lambda root: os.makedirs(root), "at least two class folders"),
    (lambda root: (os.makedirs(root / "a"), os.makedirs(root / "b")), "no images found"),
    (lambda root: (os.makedirs(root / "a"), os.makedirs(root / "b"), (root / "a" / "x.jpg").write_text("x")),
     "none of its 1 image files can be read"),
])
def test_unusable_folders_fail_at_once(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=message):
        scan_image_folder(str(root))


def test_split_is_stratified_and_repeatable(tmp_path):
    make_sample_data(tmp_path / "digits")
    folder = scan_image_folder(str(tmp_path / "digits"))
    assert len(folder) == 1797 and len(folder.class_names) == 10
    train, val = split_folder(folder, 0.2, seed=3)
    assert len(train) + len(val) == 1797 and not set(train.paths) & set(val.paths)
    assert np.all(np.abs(val.class_counts() / folder.class_counts() - 0.2) < 0.02)
    assert split_folder(folder, 0.2, seed=3)[1].paths == val.paths


def test_tfrecords_hold_the_same_images(tmp_path, rng):
    make_bad_folder(tmp_path / "data", rng)
    index = make_tfrecords(str(tmp_path / "data"), str(tmp_path / "records"), shards=3)
    assert index["splits"]["train"]["count"] == 19 and len(index["skipped"]) == 4
    source = load_tfrecords(str(tmp_path / "records"))
    folder = scan_image_folder(str(tmp_path / "data"))
    config = AugmentConfig.preset("none")
    from_records = make_train_dataset(source, (16, 16), 19, config, seed=0)[0]
    from_folder = make_train_dataset(folder, (16, 16), 19, config, seed=0)[0]
    records_images = next(iter(from_records))[0].numpy()
    folder_images = next(iter(from_folder))[0].numpy()
    # Same images (order differs: records shuffle differently); compare sorted sums.
    np.testing.assert_allclose(np.sort(records_images.sum(axis=(1, 2, 3))), np.sort(folder_images.sum(axis=(1, 2, 3))))
    with pytest.raises(FileExistsError):
        make_tfrecords(str(tmp_path / "data"), str(tmp_path / "records"))


def test_center_crop_matches_pillow_resize_and_crop(rng):
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    got = center_crop(tf.constant(image), (256, 256), 0.888).numpy()
    # Pillow: short side to floor(256 / 0.888) = 288, bicubic, then the centre 256 x 256.
    resized = np.asarray(Image.fromarray(image).resize((384, 288), Image.BICUBIC), np.float32)
    expected = resized[16:272, 64:320]
    assert got.shape == (256, 256, 3)
    assert np.abs(got - expected).mean() < 2.0  # TF's and Pillow's bicubic kernels differ slightly


def test_epochs_depend_on_seed_and_epoch_only(tmp_path):
    make_sample_data(tmp_path / "digits")
    folder = scan_image_folder(str(tmp_path / "digits")).subset(range(0, 1797, 9))
    config = AugmentConfig.preset("recipe")

    def batches(start, seed=0):
        dataset, steps = make_train_dataset(folder, (24, 24), 16, config, seed=seed, start_epoch=start, epochs=3,
                                            deterministic=True)
        return [(x.numpy(), y.numpy()) for x, y in dataset], steps

    full, steps = batches(0)
    resumed, _ = batches(2)
    assert len(full) == 3 * steps and len(resumed) == steps
    for (a, la), (b, lb) in zip(full[2 * steps:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(full[0][0], full[steps][0])  # epochs differ from each other
    other_seed, _ = batches(2, seed=1)
    assert not np.array_equal(other_seed[0][0], resumed[0][0])
    images, labels = full[0]
    assert images.shape == (16, 24, 24, 3) and 0 <= images.min() and images.max() <= 255
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-5)
    assert (labels.max(axis=1) < 1).any()  # MixUp / CutMix mixed some labels


def test_mixup_mixes_labels_as_it_mixes_pixels():
    config = dataclasses.replace(AugmentConfig.preset("none"), mixup_alpha=0.4)
    augmenter = Augmenter(config, (8, 8), seed=0)
    images = tf.constant(np.stack([np.full((8, 8, 3), 10.0 * i, np.float32) for i in range(8)]))
    labels = tf.one_hot(tf.range(8), 8)
    mixed_images, mixed_labels = augmenter.per_batch(images, labels, tf.constant([1, 2], tf.int64),
                                                     tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    mixed_images, mixed_labels = mixed_images.numpy(), mixed_labels.numpy()
    # Every image is constant, so its value is sum_i label_i * 10 i.
    np.testing.assert_allclose(mixed_images[:, 0, 0, 0], mixed_labels @ (10.0 * np.arange(8)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-5)


def test_cutmix_mixes_labels_by_pasted_area():
    config = dataclasses.replace(AugmentConfig.preset("none"), cutmix_alpha=1.0)
    augmenter = Augmenter(config, (128, 128), seed=0)
    images = tf.constant(np.stack([np.full((128, 128, 3), float(i), np.float32) for i in range(8)]))
    labels = tf.one_hot(tf.range(8), 8)
    mixed_images, mixed_labels = augmenter.per_batch(images, labels, tf.constant([3, 4], tf.int64),
                                                     tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    for image, label in zip(mixed_images.numpy(), mixed_labels.numpy()):
        values, counts = np.unique(image[..., 0], return_counts=True)
        area = dict(zip(values.astype(int), counts / counts.sum()))
        for cls, share in area.items():
            assert abs(label[cls] - share) < 0.02  # Keras weighs by the box, the mask is whole pixels


def test_multi_scale_batches_keep_pixels_per_batch(tmp_path):
    sizes, batches = multi_scale_schedule(256, 32)
    assert sizes == [160, 192, 256, 288, 320]  # cvnets: linspace(160, 320, 5), make_divisible by 32
    assert batches == [81, 56, 32, 25, 20]
    make_sample_data(tmp_path / "digits")
    folder = scan_image_folder(str(tmp_path / "digits")).subset(range(0, 1797, 6))
    dataset, steps = make_multi_scale_dataset(folder, 64, 16, AugmentConfig.preset("light"), seed=0, epochs=1)
    seen = [(x.shape[0], x.shape[1]) for x, _ in dataset]
    assert len(seen) == steps
    expected = dict(zip(*multi_scale_schedule(64, 16)))
    assert all(expected[size] == batch for batch, size in seen)
    assert len({size for _, size in seen}) > 1
