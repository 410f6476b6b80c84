"""What a converted segmentation model should output: logits at the input size, logits at the head's
resolution, or the category mask computed in the file.

- Cost: DeepLabv3 on MobileViTv2-0.5 (21 classes, random weights) at 512x512, converted the three ways;
  file size, XNNPACK delegation and latency (LiteRT, XNNPACK, 1 thread, the files in turns).
- Accuracy: a trained model (by default the segmentation quickstart's) converted the three ways, mIoU on its
  validation images (cvnets' protocol) beside the Keras model.

Writes benchmarks/results/segmentation_export.json and .md.

    mobilevitv2 quickstart --task segmentation       # the model and data measured by default
    python benchmarks/segmentation_export.py [--model M.keras --data DIR] [--work DIR]
"""

import argparse
import os
import tempfile

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.files import write_json, write_text
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import OUTPUTS, convert
from mobilevitv2_tflite.runtime import evaluate_segmentation_model

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "segmentation_export")
QUICKSTART = "mobilevitv2-quickstart-segmentation"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(QUICKSTART, "run", "model.keras"))
    parser.add_argument("--data", default=os.path.join(QUICKSTART, "data"))
    parser.add_argument("--size", type=int, default=512, help="the input size timed")
    parser.add_argument("--work", help="keep the converted files here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="segmentation_export_")
    os.makedirs(work, exist_ok=True)

    timed_model = os.path.join(work, "deeplabv3.keras")
    kmv.create_model("deeplabv3_mobilevitv2_050", input_shape=(args.size, args.size, 3)).save(timed_model)
    rows, files = [], {}
    for outputs in OUTPUTS["segmentation"]:
        path = os.path.join(work, f"timed_{outputs}.tflite")
        report = convert(timed_model, path, outputs=outputs, overwrite=True)
        files[outputs] = path
        rows.append(dict(outputs=outputs, megabytes=round(report.size_bytes / 1e6, 2),
                         output=report.output_details, xnnpack=report.xnnpack.summary()))
        print(report.summary(), flush=True)
    timed = benchmark_interleaved({outputs: (path, 1) for outputs, path in files.items()}, rounds=20, runs=5)
    keras_scores = evaluate_segmentation_model(args.model, args.data, progress=False)
    for row in rows:
        row.update(median_ms=timed[row["outputs"]].median_ms, p95_ms=timed[row["outputs"]].p95_ms)
        path = os.path.join(work, f"trained_{row['outputs']}.tflite")
        convert(args.model, path, outputs=row["outputs"], overwrite=True)
        scores = evaluate_segmentation_model(path, args.data, progress=False)
        row.update(miou=scores["miou"], pixel_accuracy=scores["pixel_accuracy"])
        print(f"{row['outputs']}: {row['median_ms']:.1f} ms, mIoU {row['miou']:.4f}", flush=True)

    lines = [f"DeepLabv3 on MobileViTv2-0.5 (21 classes) at {args.size}x{args.size}: LiteRT, XNNPACK, 1 thread, the "
             f"files in turns. mIoU: `{args.model}` on the validation images of `{args.data}` (Keras: "
             f"{keras_scores['miou']:.4f}). `python benchmarks/segmentation_export.py`", "",
             "| outputs | output tensor | MB | median ms | p95 ms | mIoU | mIoU - Keras | XNNPACK |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        lines.append(f"| {row['outputs']} | {row['output']['dtype']} {row['output']['shape']} | {row['megabytes']} "
                     f"| {row['median_ms']:.1f} | {row['p95_ms']:.1f} | {row['miou']:.4f} "
                     f"| {row['miou'] - keras_scores['miou']:+.4f} | {row['xnnpack']} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    write_json(RESULTS + ".json", dict(keras=keras_scores, rows=rows))
    write_text(RESULTS + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
