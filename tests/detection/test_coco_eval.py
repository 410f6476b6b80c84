"""COCO AP: perfect predictions score 1, and the numbers are pycocotools' own on the same detections."""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from keras_mobilevitv2.detection.coco_eval import STAT_NAMES, coco_evaluate, pixel_predictions

CATEGORY_IDS = (3, 7, 90)  # labels 1, 2, 3


def ground_truth(rng, images=6):
    """Objects of every COCO size range, one crowd region, one image without objects."""
    data = {"images": [], "annotations": [], "categories": [{"id": c, "name": f"c{c}"} for c in (90, 3, 7)]}
    for image_id in range(1, images + 1):
        data["images"].append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        if image_id == images:
            continue
        for side in (20, 60, 200):  # small, medium, large
            x, y = rng.uniform(0, 640 - side), rng.uniform(0, 480 - side)
            data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": image_id,
                                        "category_id": int(rng.choice(CATEGORY_IDS)), "bbox": [x, y, side, side],
                                        "area": side * side * 0.8, "iscrowd": 0})
    data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": 1, "category_id": 3,
                                "bbox": [0, 0, 100, 100], "area": 10000.0, "iscrowd": 1})
    return data


def perfect(data):
    label_of = {c: k for k, c in enumerate(CATEGORY_IDS, start=1)}
    predictions = []
    for image in data["images"]:
        objects = [a for a in data["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in objects)]).reshape(-1, 4)
        predictions.append({"image_id": image["id"], "boxes": boxes,
                            "labels": np.array([label_of[a["category_id"]] for a in objects], np.int64),
                            "scores": np.linspace(0.9, 0.5, len(objects))})
    return predictions


def test_perfect_predictions_score_one_silently(rng, capsys):
    data = ground_truth(rng)
    stats = coco_evaluate(perfect(data), data)
    assert set(stats) == set(STAT_NAMES)
    for name in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100"):
        assert stats[name] == pytest.approx(1.0), name
    assert capsys.readouterr().out == ""
    coco_evaluate(perfect(data), data, verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_numbers_equal_an_independent_pycocotools_run_on_the_same_detections(rng, tmp_path):
    data = ground_truth(rng)
    predictions = perfect(data)
    for prediction in predictions:  # move, relabel, add false positives, shuffle scores
        count = len(prediction["labels"])
        prediction["boxes"] = prediction["boxes"] + rng.normal(0, 6, prediction["boxes"].shape)
        prediction["labels"] = np.where(rng.random(count) < 0.2, rng.integers(1, 4, count), prediction["labels"])
        prediction["scores"] = rng.random(count)
        extra = rng.uniform(0, 400, (3, 2))
        prediction["boxes"] = np.concatenate([prediction["boxes"], np.concatenate([extra, extra + 50], 1)])
        prediction["labels"] = np.concatenate([prediction["labels"], rng.integers(1, 4, 3)])
        prediction["scores"] = np.concatenate([prediction["scores"], rng.random(3) * 0.5])
    annotation_file = tmp_path / "instances.json"
    annotation_file.write_text(json.dumps(data))
    stats = coco_evaluate(predictions, str(annotation_file))

    results = [{"image_id": p["image_id"], "category_id": CATEGORY_IDS[label - 1],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
               for p in predictions for (x1, y1, x2, y2), label, score in zip(p["boxes"].tolist(), p["labels"],
                                                                             p["scores"])]
    (tmp_path / "results.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        reference = COCO(str(annotation_file))
        evaluation = COCOeval(reference, reference.loadRes(str(tmp_path / "results.json")), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert [stats[name] for name in STAT_NAMES] == evaluation.stats.tolist()
    assert 0.1 < stats["AP"] < 0.9


def test_no_detections_score_zero_and_bad_labels_are_refused(rng):
    data = ground_truth(rng)
    assert coco_evaluate([], data)["AP"] == 0.0
    with pytest.raises(ValueError, match="label 4 is not in 1..3"):
        coco_evaluate([{"image_id": 1, "boxes": [[0, 0, 5, 5]], "labels": [4], "scores": [0.5]}], data)


def test_pixel_predictions_scale_clip_and_drop_padding():
    detections = {"boxes": np.array([[[0.1, 0.2, 0.5, 1.2], [0, 0, 0, 0]], [[-0.1, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]]),
                  "labels": np.array([[2, -1], [1, 3]]), "confidence": np.array([[0.9, 0], [0.8, 0.7]]),
                  "num_detections": np.array([1, 2])}
    info = {"image_id": np.array([7, 8]), "original_size": np.array([[100, 200], [50, 40]])}
    first, second = pixel_predictions(detections, info)
    assert first["image_id"] == 7 and first["labels"].tolist() == [2]
    np.testing.assert_allclose(first["boxes"], [[20, 20, 100, 100]], rtol=1e-6)
    np.testing.assert_allclose(second["boxes"], [[0, 0, 20, 25], [20, 25, 40, 50]], rtol=1e-6)
    np.testing.assert_allclose(second["scores"], [0.8, 0.7], rtol=1e-6)


def test_anchors_holding_the_matched_targets_score_one_through_the_eval_pipeline(tmp_path):
    """End to end on the sample set: eval images in order, each anchor's target and class as the 'prediction',
    post-processed, mapped back to the original pixels and evaluated: a perfect score."""
    import tensorflow as tf

    from keras_mobilevitv2.data.detection import scan_coco
    from keras_mobilevitv2.data.detection_pipeline import make_detection_eval_dataset
    from keras_mobilevitv2.data.sample_detection import make_detection_sample_data
    from keras_mobilevitv2.detection import match_anchors, postprocess, ssd_anchors

    make_detection_sample_data(tmp_path, train_images=1, val_images=12, seed=1)
    val = scan_coco(tmp_path / "val" / "images", tmp_path / "val" / "annotations.json")
    anchors = ssd_anchors(128, 128)
    predictions, index = [], 0
    for images, info in make_detection_eval_dataset(val, (128, 128), 5):
        targets, labels = zip(*(match_anchors(*val.training_boxes(index + i), anchors) for i in range(len(images))))
        index += len(images)
        detections = postprocess(tf.stack(targets), tf.one_hot(tf.stack(labels), val.num_classes) * 10.0, anchors)
        predictions += pixel_predictions(detections, info)
    stats = coco_evaluate(predictions, val.to_coco())
    assert stats["AP"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)
