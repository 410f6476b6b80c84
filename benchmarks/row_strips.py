"""How many row strips the first stages should run in: latency against strips, image size and precision.

Converts ``mobilevitv2_050`` (random weights) at each size with ``--strips 1``
(the whole image), the counts in ``--strips`` and ``auto``, float32 and, at the
largest size, full int8 (calibrated on the digits), and times every file of a
size in turns (LiteRT, XNNPACK, 1 thread, batch 1). The choice ``auto`` makes
(``graph.strips_for``: one strip per ``graph.STRIP_BYTES`` of the largest
float32 map; none for int8) should sit at or near the fastest count of every
size. Writes benchmarks/results/row_strips.{csv,md,png}.

    python benchmarks/row_strips.py [--sizes 384 512 768 1024] [--strips 2 4 6 8 10] [--rounds 5]
"""

import argparse
import os
import sys
import tempfile

import keras

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.files import save_figure, write_text
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import fixed_size_model
from mobilevitv2_tflite.graph import STRIP_BYTES

from common import Converter, machine, markdown_table, write_csv

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "mobilevitv2_050"


def measure(convert, size, precision, counts, rounds):
    """Rows ``{image_size, precision, strips, auto, ms, relative}`` for one size and precision."""
    model = kmv.create_model(NAME, input_shape=(size, size, 3), classifier_activation=None)
    auto = fixed_size_model(model, precision=precision)[1].strips
    counts = sorted({1, auto, *counts})
    files = {strips: (convert(NAME, model, precision, size, strips=strips), 1) for strips in counts}
    keras.backend.clear_session()
    timed = benchmark_interleaved(files, rounds=rounds, runs=3, warmup=2)
    whole = timed[1].median_ms
    return [{"image_size": size, "precision": precision, "strips": strips, "auto": "yes" if strips == auto else "",
             "ms": round(timed[strips].median_ms, 2), "relative": round(timed[strips].median_ms / whole, 3)}
            for strips in counts]


def plot(rows, path):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for (size, precision) in dict.fromkeys((r["image_size"], r["precision"]) for r in rows):
        chosen = [r for r in rows if (r["image_size"], r["precision"]) == (size, precision)]
        line, = axis.plot([r["strips"] for r in chosen], [r["relative"] for r in chosen], "o-" if precision == "fp32"
                          else "s--", label=f"{size}x{size} {precision}")
        for r in chosen:
            if r["auto"]:
                axis.plot(r["strips"], r["relative"], "*", markersize=14, color=line.get_color())
    axis.axhline(1.0, color="gray", linewidth=0.8)
    axis.set_xlabel("row strips of the first stages (1: whole image; star: auto)")
    axis.set_ylabel("latency / whole-image latency")
    axis.set_title(f"{NAME}, TFLite XNNPACK, 1 thread")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512, 768, 1024])
    parser.add_argument("--strips", type=int, nargs="+", default=[2, 4, 6, 8, 10])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "row_strips"))
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as work:
        convert = Converter(work)
        for size in args.sizes:
            rows += measure(convert, size, "fp32", args.strips, args.rounds)
        rows += measure(convert, max(args.sizes), "int8", [2, 4, 8], args.rounds)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_csv(rows, args.out + ".csv")
    plot(rows, args.out + ".png")
    text = "\n".join([
        f"## Row strips of the first stages, {NAME}", "",
        f"Measured on {machine()}; TFLite (ai-edge-litert) with XNNPACK, 1 thread, batch 1, random weights, median "
        f"of {args.rounds} rounds x 3 invokes, the files of one size and precision taking turns. auto: one strip per "
        f"{STRIP_BYTES / 2**20:g} MiB of the largest float32 map, none for int8. Command: "
        f"`python benchmarks/row_strips.py --sizes {' '.join(map(str, args.sizes))} "
        f"--strips {' '.join(map(str, args.strips))} --rounds {args.rounds}`.", "",
        *markdown_table(rows), "", f"![latency against strips]({os.path.basename(args.out)}.png)"]) + "\n"
    write_text(args.out + ".md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
