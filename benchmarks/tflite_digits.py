"""What each TFLite variant of a trained model costs in accuracy: fp32, fp16, dynamic, int8 PTQ, int8 QAT.

Takes a trained ``.keras`` model and its image folder (by default the
quickstart's: ``mobilevitv2 quickstart --out mobilevitv2-quickstart`` trains
``mobilevitv2_050`` on the bundled digits), converts it to every precision,
fine-tunes it with quantization-aware training (``--qat-epochs``), and evaluates
every file on the whole folder against the Keras model. Writes
benchmarks/results/tflite_digits.{json,md}.

    python benchmarks/tflite_digits.py [--model mobilevitv2-quickstart/run/model.keras]
        [--data mobilevitv2-quickstart/digits] [--qat-epochs 2]
"""

import argparse
import os
import sys
import tempfile

from keras_mobilevitv2.files import write_json, write_text
from mobilevitv2_tflite.convert import convert
from mobilevitv2_tflite.qat import quantization_aware_training
from mobilevitv2_tflite.runtime import evaluate, evaluate_models

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = (("fp32", "fp32", "float32"), ("fp16", "fp16", "float32"), ("dynamic range", "dynamic", "float32"),
            ("int8 PTQ, uint8 I/O", "int8", "uint8"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilevitv2-quickstart/run/model.keras")
    parser.add_argument("--data", default="mobilevitv2-quickstart/digits")
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--calibration-steps", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "tflite_digits"))
    args = parser.parse_args(argv)

    rows = [dict(variant="Keras (float32)", **evaluate(args.model, args.data))]
    with tempfile.TemporaryDirectory() as work:
        files = []  # (row without scores, path): every file is evaluated in one pass below
        for label, precision, io_type in VARIANTS:
            path = os.path.join(work, f"{precision}.tflite")
            report = convert(args.model, path, precision=precision, calibration_data=args.data,
                             calibration_steps=args.calibration_steps, io_type=io_type)
            files.append((dict(variant=label, megabytes=round(report.size_bytes / 1e6, 2),
                               xnnpack=report.xnnpack.summary()), path))
        path, report, history = quantization_aware_training(
            args.model, args.data, os.path.join(work, "qat"), epochs=args.qat_epochs,
            calibration_steps=args.calibration_steps)
        files.append((dict(variant=f"int8 QAT ({args.qat_epochs} epochs), uint8 I/O",
                           megabytes=round(report.size_bytes / 1e6, 2), xnnpack=report.xnnpack.summary(),
                           qat_history=history), path))
        scores = evaluate_models([path for _, path in files], args.data, reference=args.model)
        rows += [dict(**row, **score) for (row, _), score in zip(files, scores)]

    keras_top1 = rows[0]["top1"]
    lines = [f"`{args.model}` on all {rows[0]['images']} images of `{args.data}`, each file against the Keras model.",
             "", "| variant | size | top-1 | vs Keras | top-1 agreement | max probability diff | mean probability diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| {rows[0]['variant']} | | {keras_top1:.2%} | | | | |"]
    for row in rows[1:]:
        lines.append(f"| {row['variant']} | {row['megabytes']} MB | {row['top1']:.2%} "
                     f"| {(row['top1'] - keras_top1) * 100:+.2f} pt | {row['top1_agreement']:.2%} "
                     f"| {row['max_probability_difference']:.2g} | {row['mean_probability_difference']:.2g} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json(args.out + ".json", rows)
    write_text(args.out + ".md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
