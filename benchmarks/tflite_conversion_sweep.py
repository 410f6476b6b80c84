"""Every zoo model to TFLite at 256x256: float32 and full-integer int8, builtin ops only.

For each model (random weights, seed 0): converts with ``mobilevitv2_tflite.convert``
to fp32 and to int8 (calibrated on the bundled digits, float I/O), and records
the file size, the op count, the ops that need more than TFLite's builtins (none
allowed), what XNNPACK leaves to TFLite, the largest |logit| difference of the
float32 file from Keras on random images (random weights make int8 accuracy
meaningless here: the digits and QAT figures measure it). Writes benchmarks/results/tflite_conversion_sweep.{json,md}.

    python benchmarks/tflite_conversion_sweep.py [--models mobilevitv2_050 ...] [--images 8]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.data import make_sample_data
from keras_mobilevitv2.files import write_json, write_text
from mobilevitv2_tflite.convert import convert
from mobilevitv2_tflite.runtime import KerasClassifier, TFLiteClassifier

HERE = os.path.dirname(os.path.abspath(__file__))


def sweep_model(name, work, calibration, images, size=256):
    model = kmv.create_model(name, input_shape=(size, size, 3), classifier_activation=None)
    keras_path = os.path.join(work, f"{name}.keras")
    model.save(keras_path)
    reference = KerasClassifier(model).scores_batch(images)
    row = {"model": name}
    for precision in ("fp32", "int8"):
        out = os.path.join(work, f"{name}_{precision}.tflite")
        start = time.perf_counter()
        report = convert(keras_path, out, precision=precision,
                         calibration_data=calibration if precision == "int8" else None, calibration_steps=32,
                         outputs="logits")
        logits = TFLiteClassifier(out).scores_batch(images)
        row[precision] = {
            "seconds": round(time.perf_counter() - start, 1),
            "megabytes": round(report.size_bytes / 1e6, 2),
            "ops": sum(report.ops.values()),
            "non_builtin_ops": sorted(op for op in report.ops if op.startswith(("FLEX", "CUSTOM"))),
            "xnnpack_partitions": report.xnnpack.partitions,
            "xnnpack_not_delegated": report.xnnpack.not_delegated,
            "float_ops": report.float_ops,
        }
        if precision == "fp32":
            row[precision]["max_logit_difference"] = float(np.abs(logits - reference).max())
        print(f"{name} {precision}: {row[precision]}", flush=True)
    return row


def markdown(rows, images):
    lines = [
        f"Every zoo model at 256x256 (random weights), converted by `mobilevitv2_tflite.convert`; "
        f"float32 logits compared with Keras on {images} random images. int8: full integer, calibrated on "
        "the digits, float I/O, with the ops XNNPACK has no int8 kernel for kept in float inside the file "
        "(float islands).",
        "",
        "| model | fp32 MB | fp32 max logit diff | int8 MB | non-builtin ops | XNNPACK fp32 "
        "| XNNPACK int8: partitions, left to TFLite | int8 float islands |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        fp32, int8 = row["fp32"], row["int8"]
        left = ", ".join(f"{op} x{n}" for op, n in sorted(int8["xnnpack_not_delegated"].items())) or "none"
        fp32_left = "all delegated" if not fp32["xnnpack_not_delegated"] else str(fp32["xnnpack_not_delegated"])
        lines.append(
            f"| {row['model']} | {fp32['megabytes']} | {fp32['max_logit_difference']:.1e} | {int8['megabytes']} "
            f"| {len(fp32['non_builtin_ops']) + len(int8['non_builtin_ops'])} "
            f"| {fp32_left} | {int8['xnnpack_partitions']}: {left} "
            f"| {', '.join(f'{op} x{n}' for op, n in sorted(int8['float_ops'].items()))} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=kmv.list_models())
    parser.add_argument("--images", type=int, default=8, help="random images for the logit comparison")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "tflite_conversion_sweep"))
    args = parser.parse_args(argv)

    images = np.random.default_rng(0).integers(0, 256, (args.images, 256, 256, 3)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        calibration = os.path.join(work, "digits")
        make_sample_data(calibration)
        for name in args.models:
            rows.append(sweep_model(name, work, calibration, images))
            for suffix in (".keras", "_fp32.tflite", "_int8.tflite"):
                os.remove(os.path.join(work, name + suffix))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json(args.out + ".json", rows)
    write_text(args.out + ".md", markdown(rows, args.images))
    print(markdown(rows, args.images))
    failed = [r["model"] for r in rows if r["fp32"]["non_builtin_ops"] or r["int8"]["non_builtin_ops"]
              or r["fp32"]["max_logit_difference"] > 1e-4]
    if failed:
        print(f"not builtin-only or fp32 off by more than 1e-4: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
