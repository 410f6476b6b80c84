"""Runs a .tflite file through MediaPipe Tasks' Python API and prints what it returns as JSON.

Run by tests/tflite/test_mediapipe.py with the Python of a virtualenv that has mediapipe (it cannot share
this package's environment: mediapipe and tensorflow-model-optimization pin absl-py apart), so it imports
nothing of keras_mobilevitv2:

    python mediapipe_tasks.py classify|segment|detect MODEL IMAGE [IMAGE ...]
"""

import argparse
import json

import numpy as np
from PIL import Image


def _image(path):
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(
        np.asarray(Image.open(path).convert("RGB"))))


def classify(model, images):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=-1)
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            head, = classifier.classify(_image(path)).classifications
            results.append([{"index": c.index, "name": c.category_name, "score": c.score} for c in head.categories])
    return results


def segment(model, images):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model),
                                           output_category_mask=True, output_confidence_masks=True)
    results = []
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        labels = segmenter.labels
        for path in images:
            result = segmenter.segment(_image(path))
            mask = result.category_mask.numpy_view().reshape(result.category_mask.height, -1)  # [H, W(, 1)]
            confidence = np.stack([m.numpy_view().reshape(m.height, m.width) for m in result.confidence_masks], -1)
            results.append({"category_mask": mask.astype(int).tolist(), "labels": list(labels),
                             "confidence_sum": [float(confidence.sum(-1).min()), float(confidence.sum(-1).max())]})
    return results


def detect(model, images):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=model), score_threshold=0.0,
                                           max_results=-1)
    results = []
    with vision.ObjectDetector.create_from_options(options) as detector:
        for path in images:
            results.append([{"box": [d.bounding_box.origin_x, d.bounding_box.origin_y,
                                     d.bounding_box.origin_x + d.bounding_box.width,
                                     d.bounding_box.origin_y + d.bounding_box.height],
                             "index": d.categories[0].index, "name": d.categories[0].category_name,
                             "score": d.categories[0].score} for d in detector.detect(_image(path)).detections])
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["classify", "segment", "detect"])
    parser.add_argument("model")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    run = {"classify": classify, "segment": segment, "detect": detect}[args.task]
    print(json.dumps(run(args.model, args.images)))


if __name__ == "__main__":
    main()
