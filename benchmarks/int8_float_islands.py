"""What the int8 float islands cost in accuracy and buy in speed: the official reference checkpoints on real photos.

Imports the official reference checkpoints of ``mobilevitv2_050`` and
``mobilevit_xxs`` (tests/fixtures/cvnets: not trained, but with batch-norm
statistics measured on images, so their logits depend on the input at full
scale), converts each at 256 to int8 with every op in int8 (``--all-int8``),
calibrated on six of scikit-image's photos, and turns that file's islands to
float as `mobilevitv2 convert` does. MobileViT v1's attention products stay in
int8 there; a third file keeps them in float too, to show that trade-off.

Errors on 72 views of six other photos (the whole photo and five crops of 70%
or 85% of it, each also mirrored): each file's mean absolute logit error
against Keras over the spread (standard deviation) of the Keras logits, with
its standard error, and the mean per-view difference from the default file's
error (paired, so the views' own difficulty cancels); top-1 agreement;
XNNPACK's partitions; and, timed in turns with the float32 file at 1 thread,
the median latency and its ratio to float32's.

``--trained MODEL.keras DATA``: also a model trained on an image folder (for
example ``mobilevitv2 train --model mobilevit_xxs`` on the digits of
``mobilevitv2 make-sample-data``), its files converted by ``convert`` with
calibration on that folder and evaluated on the whole folder against the Keras
model (top-1, agreement, mean probability difference).
Writes benchmarks/results/int8_float_islands.{json,md}.

    python benchmarks/int8_float_islands.py [--rounds 20] [--trained MODEL.keras DATA]
"""

import argparse
import os
import sys
import tempfile

import numpy as np

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.files import write_json, write_text
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import (convert, fixed_size_model, load_keras_model, tflite_content,
                                        xnnpack_delegation)
from mobilevitv2_tflite.float_islands import FLOAT_ISLAND_OPS, float_islands_in_quantized, graph_ops
from mobilevitv2_tflite.runtime import evaluate_models

from common import machine, markdown_table

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINTS = os.path.join(HERE, "..", "tests", "fixtures", "cvnets")
TEST_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
CALIBRATION_PHOTOS = ("horse", "coins", "camera", "moon", "retina", "brick")
SIZE = 256
# The views of a test photo, as (left, top, right, bottom) fractions: the whole photo, its four 70% corners and
# its 70% centre; each also mirrored.
VIEWS = ((0, 0, 1, 1), (0, 0, .7, .7), (.3, 0, 1, .7), (0, .3, .7, 1), (.3, .3, 1, 1), (.15, .15, .85, .85))
DEFAULT, ALL_INT8, FLOAT_PRODUCTS = "float islands", "all int8", "float islands, attention products in float too"


def photos(names, views=((0, 0, 1, 1),), mirrored=False):
    import skimage.data
    from PIL import Image

    images = []
    for name in names:
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        image = Image.fromarray(image[..., :3].astype(np.uint8))
        width, height = image.size
        for left, top, right, bottom in views:
            view = image.crop((round(left * width), round(top * height), round(right * width),
                               round(bottom * height))).resize((SIZE, SIZE))
            images += [np.asarray(v, np.float32) for v in ((view, view.transpose(Image.FLIP_LEFT_RIGHT))
                                                           if mirrored else (view,))]
    return np.stack(images)


def run_file(content, images):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=content).get_signature_runner()
    (name,) = runner.get_input_details()
    return np.concatenate([next(iter(runner(**{name: image[np.newaxis]}).values())) for image in images])


def variants(all_int8):
    """The int8 files compared, from the file with every op in int8."""
    files = {DEFAULT: float_islands_in_quantized(all_int8), ALL_INT8: all_int8}
    if any(op == "BATCH_MATMUL" for op, _, _ in graph_ops(all_int8)):
        files[FLOAT_PRODUCTS] = float_islands_in_quantized(all_int8, FLOAT_ISLAND_OPS + ("BATCH_MATMUL",))
    return files


def write_files(files, work, stem):
    """Writes ``{kind: .tflite bytes}`` into ``work``: ``{kind: path}``."""
    paths = {}
    for kind, content in files.items():
        paths[kind] = os.path.join(work, f"{stem}_{kind.replace(' ', '_').replace(',', '')}.tflite")
        with open(paths[kind], "wb") as file:
            file.write(content)
    return paths


def measure(name, work, rounds):
    keras_path = os.path.join(work, f"{name}.keras")
    kmv.import_checkpoint(os.path.join(CHECKPOINTS, f"cvnets_{name}.pt"), name, keras_path)
    graph = fixed_size_model(load_keras_model(keras_path), precision="int8", outputs="logits")[0]
    test, calibration = photos(TEST_PHOTOS, VIEWS, mirrored=True), photos(CALIBRATION_PHOTOS)
    reference = graph.predict(test, batch_size=8, verbose=0)
    all_int8 = tflite_content(graph, "int8", [[image[np.newaxis]] for image in calibration], float_islands=False)
    files = dict(variants(all_int8), float32=tflite_content(graph, "fp32"))
    paths = write_files(files, work, name)
    timed = benchmark_interleaved({kind: (path, 1) for kind, path in paths.items()}, rounds=rounds, runs=5)
    logits = {kind: run_file(content, test) for kind, content in files.items() if kind != "float32"}
    errors = {kind: np.abs(values - reference).mean(1) / reference.std() for kind, values in logits.items()}
    rows = []
    for kind, error in errors.items():
        paired = error - errors[DEFAULT]
        rows.append({"model": name, "int8": kind, "images": len(test),
                     "mean_logit_error_over_spread": round(float(error.mean()), 4),
                     "standard_error": round(float(error.std() / np.sqrt(len(error))), 4),
                     "minus_default_paired": "" if kind == DEFAULT else
                     f"{paired.mean():+.4f} ± {paired.std() / np.sqrt(len(paired)):.4f}",
                     "top1_agreement": round(float((logits[kind].argmax(1) == reference.argmax(1)).mean()), 3),
                     "xnnpack_partitions": xnnpack_delegation(paths[kind]).partitions,
                     "ms_1t": round(timed[kind].median_ms, 2),
                     "over_fp32": round(timed[kind].median_ms / timed["float32"].median_ms, 3)})
        print(rows[-1], flush=True)
    return rows


def measure_trained(model, data, work):
    """A trained model's int8 files (calibrated on ``data`` by ``convert``) on the whole of ``data``."""
    all_int8_path = os.path.join(work, "trained_all_int8.tflite")
    convert(model, all_int8_path, "int8", calibration_data=data, io_type="uint8", float_islands=False)
    with open(all_int8_path, "rb") as file:
        paths = write_files(variants(file.read()), work, "trained")
    rows = []
    for kind, score in zip(paths, evaluate_models(list(paths.values()), data, reference=model)):
        rows.append({"model": model, "int8": kind, "images": score["images"], "top1": round(score["top1"], 4),
                     "top1_agreement": round(score["top1_agreement"], 4),
                     "mean_probability_difference": round(score["mean_probability_difference"], 5)})
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilevitv2_050", "mobilevit_xxs"])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "int8_float_islands"))
    parser.add_argument("--rounds", type=int, default=20, help="timing rounds, the files taking turns")
    parser.add_argument("--trained", nargs=2, metavar=("MODEL", "DATA"),
                        help="also a trained .keras model on its image folder")
    args = parser.parse_args(argv)
    rows, trained = [], []
    with tempfile.TemporaryDirectory() as work:
        for name in args.models:
            rows += measure(name, work, args.rounds)
        if args.trained:
            trained = measure_trained(*args.trained, work)
    write_json(args.out + ".json", {"official": rows, "trained": trained})
    text = [
        f"The official reference checkpoints at {SIZE}x{SIZE}, int8 with float islands (as `mobilevitv2 convert` "
        f"writes it), with every op in int8 and, for MobileViT v1, with its attention products in float too; one "
        f"calibration (scikit-image: {', '.join(CALIBRATION_PHOTOS)}). Errors on {len(VIEWS) * 2} views of each of "
        f"{', '.join(TEST_PHOTOS)} (whole, five crops, each mirrored); `minus_default_paired`: the mean per-view "
        f"difference from the default file's error, with its standard error. Median latency at 1 thread, the "
        f"files of a model taking turns with its float32 file ({args.rounds} rounds). Measured on {machine()}. "
        f"Command: `python benchmarks/int8_float_islands.py"
        f"{' --trained ' + ' '.join(args.trained) if args.trained else ''}`.", "", *markdown_table(rows)]
    if trained:
        text += ["", f"`{args.trained[0]}` on all {trained[0]['images']} images of `{args.trained[1]}`, each file "
                 f"against the Keras model:", "", *markdown_table(trained)]
    write_text(args.out + ".md", "\n".join(text) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
