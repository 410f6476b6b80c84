"""TFLite latency on this CPU: our MobileViTv2-0.5 against kimm's, float32 and full int8.

Builds our ``mobilevitv2_050`` and kimm's ``MobileViTV2W050`` (random weights,
1000 classes, 256x256), converts both the same way (``tflite_content``: builtin
ops only; int8 calibrated on the same digits, float I/O) and times them with
LiteRT's interpreter, XNNPACK, 1 thread, batch 1. The models take turns in every
round, so a slow spell of the machine hits all of them; the figure is the median
over all rounds. Targets (issue 6): ours fp32 <= 0.9x kimm fp32, ours int8 <=
0.5x ours fp32. Writes benchmarks/results/tflite_speed.{json,md,png}.

    pip install "kimm>=0.2.5" --no-deps   # benchmark-only dependency
    python benchmarks/tflite_speed.py [--image-size 256] [--rounds 30] [--runs 5]
"""

import argparse
import os
import sys
import tempfile

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.files import save_figure, write_json, write_text
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import xnnpack_delegation
from mobilevitv2_tflite.graph import fuse_pointwise_convolutions

from common import Converter, machine

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = {"ours fp32 / kimm fp32": 0.9, "ours int8 / ours fp32": 0.5}


def build_models(size):
    """``{family: (Keras model, ours)}``: ours, kimm's, and kimm's through our fusion pass."""
    import kimm

    ours = kmv.create_model("mobilevitv2_050", input_shape=(size, size, 3), classifier_activation=None)
    theirs = kimm.models.MobileViTV2W050(input_shape=(size, size, 3), weights=None, classifier_activation=None)
    # Ours as `mobilevitv2 convert` converts it; kimm's as its users convert it (TFLiteConverter, builtins),
    # and, to show what the fusion pass alone is worth, kimm's graph through the same pass.
    kimm_fused, fused = fuse_pointwise_convolutions(theirs)
    print(f"kimm: {len(fused)} pairs of 1x1 convolutions fused", file=sys.stderr)
    return {"ours": (ours, True), "kimm": (theirs, False), "kimm + our fusion": (kimm_fused, False)}


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    medians = [results[n]["median_ms"] for n in names]
    errors = [[m - results[n]["p5_ms"] for n, m in zip(names, medians)],
              [results[n]["p95_ms"] - m for n, m in zip(names, medians)]]
    figure, axis = plt.subplots(figsize=(7.5, 3.4))
    axis.bar(names, medians, yerr=errors, color=["tab:gray" if "kimm" in n else "tab:blue" for n in names], capsize=4)
    axis.tick_params(axis="x", labelsize=7)
    axis.set_ylabel("ms per image (median, p5-p95)")
    axis.set_title("MobileViTv2-0.5, 256x256, TFLite XNNPACK, 1 thread")
    save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5, help="invokes per model per round")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "tflite_speed"))
    args = parser.parse_args(argv)
    size = args.image_size

    with tempfile.TemporaryDirectory() as work:
        convert = Converter(work, calibration_steps=64)
        paths = {}
        for family, (model, ours) in build_models(size).items():
            for precision in ("fp32",) if family == "kimm + our fusion" else ("fp32", "int8"):
                paths[f"{family} {precision}"] = convert(family, model, precision, size, ours=ours)
        order = ["ours fp32", "kimm fp32", "kimm + our fusion fp32", "ours int8", "kimm int8"]
        timed = benchmark_interleaved({name: (paths[name], 1) for name in order}, args.rounds, args.runs)
        results = {name: {"median_ms": r.median_ms, "p5_ms": r.p5_ms, "p95_ms": r.p95_ms}
                   for name, r in timed.items()}
        for name in order:
            report = xnnpack_delegation(paths[name])
            results[name].update(megabytes=round(os.path.getsize(paths[name]) / 1e6, 2),
                                 xnnpack_partitions=report.partitions, xnnpack_not_delegated=report.not_delegated)

    ratios = {"ours fp32 / kimm fp32": results["ours fp32"]["median_ms"] / results["kimm fp32"]["median_ms"],
              "ours int8 / ours fp32": results["ours int8"]["median_ms"] / results["ours fp32"]["median_ms"],
              "kimm int8 / kimm fp32": results["kimm int8"]["median_ms"] / results["kimm fp32"]["median_ms"],
              "ours int8 / kimm int8": results["ours int8"]["median_ms"] / results["kimm int8"]["median_ms"],
              "ours fp32 / (kimm + our fusion) fp32":
                  results["ours fp32"]["median_ms"] / results["kimm + our fusion fp32"]["median_ms"]}
    summary = {"image_size": size, "threads": 1, "rounds": args.rounds, "runs_per_round": args.runs,
               "machine": machine(), "results": results, "ratios": ratios,
               "targets": TARGETS}
    lines = [f"MobileViTv2-0.5 at {size}x{size}, TFLite (ai-edge-litert) XNNPACK, 1 thread, batch 1, "
             f"random weights; median of {args.rounds} rounds x {args.runs} invokes, models taking turns.", "",
             "| model | median ms | p5-p95 ms | MB | XNNPACK partitions | left to TFLite |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in order:
        r = results[name]
        left = ", ".join(f"{op} x{n}" for op, n in sorted(r["xnnpack_not_delegated"].items())) or "none"
        lines.append(f"| {name} | {r['median_ms']:.2f} | {r['p5_ms']:.2f}-{r['p95_ms']:.2f} | {r['megabytes']} "
                     f"| {r['xnnpack_partitions']} | {left} |")
    lines += ["", "| ratio | measured | target |", "| --- | --- | --- |"]
    for name, value in ratios.items():
        target = f"<= {TARGETS[name]}" + (" (met)" if value <= TARGETS[name] else " (not met)") \
            if name in TARGETS else ""
        lines.append(f"| {name} | {value:.3f} | {target} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json(args.out + ".json", summary)
    write_text(args.out + ".md", text)
    plot({name: results[name] for name in order}, args.out + ".png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
