"""Where a detector's post-processing runs: in the .tflite file (TFLite_Detection_PostProcess, per-class or
fast NMS; or the Keras post-processing graph in builtin ops: WHILE, TOPK_V2, gathers) or after it (the kit's
NumPy post-processing of the raw outputs, as the Keras model's).

Converts one trained detector four ways at its own size, scores each with COCO AP on a validation set
(cvnets' protocol) beside the Keras model, and times the four files in turns (LiteRT, XNNPACK, 1 thread;
the raw file's time includes the NumPy post-processing of each output, as predict runs it). Writes
benchmarks/results/detection_postprocess.json and .md.

    mobilevitv2 quickstart --task detection            # the model and data measured by default
    python benchmarks/detection_postprocess.py [--model M.keras --data DIR] [--work DIR]
"""

import argparse
import os
import tempfile
import time

import numpy as np

from keras_mobilevitv2.detection import ssd_anchors
from keras_mobilevitv2.detection.postprocess import postprocess_numpy
from keras_mobilevitv2.evaluation import KerasDetector, evaluate_detection
from keras_mobilevitv2.files import write_json, write_text
from keras_mobilevitv2.training.tasks import load_detection_data
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import convert
from mobilevitv2_tflite.detection_postprocess import DetectionPostprocessing
from mobilevitv2_tflite.runtime import TFLiteDetector

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "detection_postprocess")
QUICKSTART = "mobilevitv2-quickstart-detection"


def time_postprocessing(path, repeats=50):
    """Median milliseconds of the NumPy post-processing of one image's raw outputs of ``path``."""
    detector = TFLiteDetector(path)
    image = np.random.default_rng(0).integers(0, 256, (*detector.input_size, 3)).astype(np.uint8)
    boxes, logits = detector.raw_outputs(image)
    anchors = ssd_anchors(*detector.input_size, architecture=detector.architecture)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        postprocess_numpy(boxes[np.newaxis], logits[np.newaxis], anchors)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


class BuiltinOpsDetector:
    """A file of the Keras post-processing graph (``models.inference_detector``) converted with builtin ops only."""

    def __init__(self, path, source):
        from ai_edge_litert.interpreter import Interpreter

        self.runner = Interpreter(model_path=path).get_signature_runner()
        self.input_size, self.postprocessed, self.source = source.input_size, True, source

    def detections(self, image):
        from keras_mobilevitv2.evaluation import prepare_detection_image

        x = prepare_detection_image(image, self.input_size, self.source.facts.interpolation)[np.newaxis]
        found = self.runner(**{"image": x.astype(np.float32)})
        count = int(found["num_detections"][0])
        return {"boxes": found["boxes"][0, :count], "labels": found["labels"][0, :count].astype(np.int64),
                "confidence": found["confidence"][0, :count]}


def convert_builtin_postprocessing(keras_detector, path):
    from keras_mobilevitv2.models import inference_detector
    from mobilevitv2_tflite.convert import batch_one_model, tflite_content

    model = batch_one_model(inference_detector(keras_detector.model), keras_detector.input_size)
    with open(path, "wb") as file:
        file.write(tflite_content(model))
    return os.path.getsize(path)


def _ms(value):
    return "-" if value is None else f"{value:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(QUICKSTART, "run", "model.keras"))
    parser.add_argument("--data", default=os.path.join(QUICKSTART, "data"))
    parser.add_argument("--work", help="keep the converted files here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="detection_postprocess_")
    os.makedirs(work, exist_ok=True)
    val = load_detection_data(args.data, split="val", progress=False)

    variants = {
        "raw outputs, NumPy post-processing": dict(outputs="raw"),
        "in the file, per-class NMS (default)": dict(outputs="detections"),
        "in the file, fast NMS": dict(outputs="detections", postprocessing=DetectionPostprocessing(regular_nms=False)),
    }
    keras_detector = KerasDetector.load(args.model)
    rows = [dict(variant="Keras, its post-processing", **evaluate_detection(keras_detector, val, progress=False))]
    files = {}
    for index, (variant, settings) in enumerate(variants.items()):
        path = os.path.join(work, f"variant{index}.tflite")
        report = convert(args.model, path, overwrite=True, **settings)
        files[variant] = path
        rows.append(dict(variant=variant, megabytes=round(report.size_bytes / 1e6, 2), ops=report.custom_ops,
                         xnnpack=report.xnnpack.summary(),
                         **evaluate_detection(TFLiteDetector(path), val, progress=False)))
        print(f"{variant}: AP {rows[-1]['AP']:.4f}, AP50 {rows[-1]['AP50']:.4f}", flush=True)
    variant, path = "in the file, builtin ops (the Keras graph)", os.path.join(work, "builtin.tflite")
    size = convert_builtin_postprocessing(keras_detector, path)
    files[variant] = path
    rows.append(dict(variant=variant, megabytes=round(size / 1e6, 2),
                     **evaluate_detection(BuiltinOpsDetector(path, keras_detector), val, progress=False)))
    print(f"{variant}: AP {rows[-1]['AP']:.4f}, AP50 {rows[-1]['AP50']:.4f}", flush=True)
    timed = benchmark_interleaved({variant: (path, 1) for variant, path in files.items()}, rounds=20, runs=10)
    numpy_ms = time_postprocessing(files["raw outputs, NumPy post-processing"])
    for row in rows[1:]:
        row.update(median_ms=timed[row["variant"]].median_ms, p95_ms=timed[row["variant"]].p95_ms)
        if row["variant"].startswith("raw"):
            row["numpy_postprocessing_ms"] = numpy_ms

    keras_ap = rows[0]["AP"]
    lines = [f"`{args.model}` on the {len(val)} validation images of `{args.data}` (COCO AP, cvnets' protocol); "
             "latency: LiteRT, XNNPACK, 1 thread, the files in turns (`python benchmarks/detection_postprocess.py`).",
             "", "| post-processing | AP | AP - Keras | AP50 | file median ms | + NumPy ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: |",
             f"| {rows[0]['variant']} | {keras_ap:.4f} | | {rows[0]['AP50']:.4f} | | |"]
    for row in rows[1:]:
        lines.append(f"| {row['variant']} | {row['AP']:.4f} | {row['AP'] - keras_ap:+.4f} | {row['AP50']:.4f} "
                     f"| {row['median_ms']:.2f} | {_ms(row.get('numpy_postprocessing_ms'))} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    write_json(RESULTS + ".json", rows)
    write_text(RESULTS + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
