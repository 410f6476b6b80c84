"""Detection training through the command line, and eval / predict of what it made."""

import json
import os

import pytest

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from keras_mobilevitv2.data.sample_detection import make_detection_sample_data


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("detection") / "data"
    make_detection_sample_data(str(root), train_images=48, val_images=12)
    return str(root)


@pytest.fixture(scope="module")
def run_dir(sample, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("detection") / "run")
    assert cli_main(["train", "--task", "detection", "--data", sample, "--out", out, "--image-size", "128",
                     "--epochs", "2", "--batch-size", "8", "--quiet"]) == 0
    return out


def test_the_run_directory_is_complete(run_dir):
    for name in ("model.keras", "history.csv", "training_curves.png", "config.json", "checkpoints/best.keras",
                 "checkpoints/best.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    config = json.load(open(os.path.join(run_dir, "config.json")))
    resolved = config["resolved"]
    assert (resolved["task"], resolved["model"]) == ("detection", "ssdlite_mobilevitv2_050")
    assert (resolved["recipe"], resolved["augmentation"], resolved["learning_rate"]) == ("small-data", "none", 0.003)
    assert config["class_names"] == ["0", "1", "4"]
    assert json.load(open(os.path.join(run_dir, "checkpoints", "best.json")))["monitor"] == "val_map"
    with open(os.path.join(run_dir, "history.csv")) as file:
        rows = file.read().splitlines()
    assert {"loss", "box_loss", "class_loss", "val_map", "val_ap50"} <= set(rows[0].split(","))
    losses = [float(row.split(",")[rows[0].split(",").index("loss")]) for row in rows[1:]]
    assert losses[1] < losses[0]  # the multibox loss goes down
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
    assert kmv.get_preprocessing(model).class_names == ("0", "1", "4")
    assert model.output["class_logits"].shape[-1] == 4


def test_eval_equals_pycocotools_on_the_json_predict_writes(run_dir, sample, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    model = os.path.join(run_dir, "model.keras")
    val_images = os.path.join(sample, "val", "images")
    annotations = os.path.join(sample, "val", "annotations.json")
    assert cli_main(["eval", model, "--data", val_images, "--annotations", annotations,
                     "--json", str(tmp_path / "eval.json")]) == 0
    scores = json.load(open(tmp_path / "eval.json"))

    truth = COCO(annotations)
    images = [os.path.join(val_images, image["file_name"]) for image in truth.dataset["images"]]
    assert cli_main(["predict", model, *images, "--out-dir", str(tmp_path / "out"), "--score-threshold", "0.01"]) == 0
    names = [category["name"] for category in sorted(truth.dataset["categories"], key=lambda c: c["id"])]
    ids = {image["file_name"]: image["id"] for image in truth.dataset["images"]}
    results = []
    for path in images:
        written = json.load(open(tmp_path / "out" / (os.path.splitext(os.path.basename(path))[0] + ".json")))
        assert (written["width"], written["height"]) == (truth.imgs[ids[written["image"]]]["width"],
                                                         truth.imgs[ids[written["image"]]]["height"])
        for found in written["detections"]:
            x1, y1, x2, y2 = found["box"]
            category = sorted(truth.getCatIds())[names.index(found["label"])]
            results.append({"image_id": ids[written["image"]], "category_id": category,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": found["score"]})
        assert os.path.isfile(tmp_path / "out" / (os.path.splitext(os.path.basename(path))[0] + "_boxes.png"))
    assert results, "an untrained model still finds something above 0.01"
    evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert [scores[key] for key in ("AP", "AP50", "AP75")] == pytest.approx(list(evaluation.stats[:3]), abs=1e-9)


def test_the_tflite_file_scores_and_predicts_as_the_keras_model(run_dir, sample, tmp_path):
    """The post-processing in the file (TFLite_Detection_PostProcess) does what the Keras post-processing does."""
    model = os.path.join(run_dir, "model.keras")
    tflite = str(tmp_path / "ssd.tflite")
    val_images = os.path.join(sample, "val", "images")
    annotations = os.path.join(sample, "val", "annotations.json")
    assert cli_main(["convert", model, "--out", tflite]) == 0
    scores = {}
    for name, path in (("keras", model), ("tflite", tflite)):
        assert cli_main(["eval", path, "--data", val_images, "--annotations", annotations,
                         "--json", str(tmp_path / f"{name}.json")]) == 0
        scores[name] = json.load(open(tmp_path / f"{name}.json"))
    assert scores["tflite"]["AP50"] == pytest.approx(scores["keras"]["AP50"], abs=0.01)
    assert scores["tflite"]["AP"] == pytest.approx(scores["keras"]["AP"], abs=0.01)
    image = os.path.join(val_images, sorted(os.listdir(val_images))[0])
    found = {}
    for name, path in (("keras", model), ("tflite", tflite)):
        assert cli_main(["predict", path, image, "--out-dir", str(tmp_path / name), "--score-threshold", "0.05"]) == 0
        stem = os.path.splitext(os.path.basename(image))[0]
        found[name] = json.load(open(tmp_path / name / f"{stem}.json"))["detections"]
    # The best detections as a set (equal scores may come in either order). Further down the lists differ:
    # cvnets keeps 400 candidates per class before NMS, the op keeps its count after it.
    assert len(found["keras"]) >= 5 and len(found["tflite"]) >= 5
    unmatched = list(found["keras"])
    for ours in found["tflite"][:5]:
        match = next(theirs for theirs in unmatched if theirs["label"] == ours["label"]
                     and abs(theirs["score"] - ours["score"]) <= 1e-4
                     and max(abs(a - b) for a, b in zip(theirs["box"], ours["box"])) <= 0.05)
        unmatched.remove(match)
