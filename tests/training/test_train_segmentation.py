"""Segmentation training through the command line, and eval / predict of what it made (.keras and .tflite)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from keras_mobilevitv2.data import make_segmentation_sample_data, scan_segmentation_data
from keras_mobilevitv2.data.segmentation import read_mask
from keras_mobilevitv2.training import SegmentationCrossEntropy

from numpy_reference import numpy_resize_bilinear


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmentation") / "data"
    make_segmentation_sample_data(str(root), train_count=48, val_count=12)
    return str(root)


@pytest.fixture(scope="module")
def run_dir(sample, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("segmentation") / "run")
    assert cli_main(["train", "--task", "segmentation", "--data", sample, "--out", out, "--image-size", "64", "96",
                     "--epochs", "2", "--batch-size", "8", "--quiet"]) == 0
    return out


def test_the_run_directory_is_complete(run_dir):
    for name in ("model.keras", "history.csv", "training_curves.png", "config.json", "data_report.txt",
                 "checkpoints/best.keras", "checkpoints/ema.keras", "checkpoints/best.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    config = json.load(open(os.path.join(run_dir, "config.json")))
    resolved = config["resolved"]
    assert (resolved["task"], resolved["model"], resolved["image_size"]) == (
        "segmentation", "deeplabv3_mobilevitv2_050", [64, 96])
    # 48 images from scratch: the small-data recipe (the VOC recipe's rate at batch 8 would be 3.1e-05)
    assert (resolved["recipe"], resolved["augmentation"], resolved["learning_rate"]) == ("small-data", "light", 0.004)
    assert config["class_names"] == ["background", "zero", "one", "two"]
    assert json.load(open(os.path.join(run_dir, "checkpoints", "best.json")))["monitor"] == "val_miou"
    with open(os.path.join(run_dir, "history.csv")) as file:
        header = file.readline().strip().split(",")
    assert {"loss", "logits_loss", "aux_logits_loss", "miou", "val_loss", "val_miou"} <= set(header)


def test_the_saved_model_is_the_inference_model(run_dir):
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
    assert not isinstance(model.output, dict) and model.output_shape == (None, 64, 96, 4)
    facts = kmv.get_preprocessing(model)
    assert facts.task == "segmentation" and facts.class_names == ("background", "zero", "one", "two")
    assert facts.head["model"] == "deeplabv3_mobilevitv2_050" and facts.head["output_stride"] == 16


def _iou_from_masks(pairs, classes):
    """mIoU written out from (ground truth, prediction) mask pairs: classes that occur in either."""
    intersection, union = np.zeros(classes), np.zeros(classes)
    for truth, predicted in pairs:
        labelled = truth < classes
        for k in range(classes):
            t, p = (truth == k) & labelled, (predicted == k) & labelled
            intersection[k] += np.sum(t & p)
            union[k] += np.sum(t | p)
    present = union > 0
    return float(np.mean(intersection[present] / union[present]))


@pytest.mark.parametrize("form", ["keras", "tflite"])
def test_eval_equals_an_independent_count_on_the_masks_predict_writes(form, run_dir, sample, tmp_path):
    model = os.path.join(run_dir, "model.keras")
    if form == "tflite":
        assert cli_main(["convert", model, "--out", str(tmp_path / "seg.tflite")]) == 0
        model = str(tmp_path / "seg.tflite")
    assert cli_main(["eval", model, "--data", sample, "--json", str(tmp_path / "eval.json")]) == 0
    scores = json.load(open(tmp_path / "eval.json"))
    val = scan_segmentation_data(sample, "val", progress=False)
    assert scores["images"] == len(val) == 12

    out = tmp_path / "masks"
    assert cli_main(["predict", model, *val.image_paths, "--out-dir", str(out)]) == 0
    pairs = []
    for image_path, mask_path in zip(val.image_paths, val.mask_paths):
        stem = os.path.splitext(os.path.basename(image_path))[0]
        predicted = np.asarray(Image.open(out / f"{stem}_mask.png"))
        truth = read_mask(mask_path, val.label_map)
        assert predicted.shape == truth.shape  # at the image's own size
        assert os.path.isfile(out / f"{stem}_overlay.png")
        pairs.append((truth, predicted))
    assert scores["miou"] == pytest.approx(_iou_from_masks(pairs, 4), abs=1e-12)
    # predict refuses to overwrite what it wrote
    assert cli_main(["predict", model, val.image_paths[0], "--out-dir", str(out)]) == 2


def test_cross_entropy_resizes_logits_and_ignores_labels(rng):
    logits = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(2, 8, 10))
    labels[0, :2] = 255
    got = float(SegmentationCrossEntropy(255)(labels, logits))
    resized = numpy_resize_bilinear(logits.astype(np.float64), 8, 10, align_corners=True)
    log_probabilities = resized - np.log(np.exp(resized).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probabilities, np.minimum(labels, 2)[..., None], -1)[..., 0]
    valid = labels != 255
    assert got == pytest.approx(-picked[valid].mean(), rel=1e-5)
