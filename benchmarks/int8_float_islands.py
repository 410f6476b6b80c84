"""What the int8 float islands cost in accuracy: the official reference checkpoints on real photos.

Imports the official reference checkpoints of ``mobilevitv2_050`` and
``mobilevit_xxs`` (tests/fixtures/cvnets: not trained, but with batch-norm
statistics measured on images, so their logits depend on the input at full
scale), converts each at 256 to int8 with every op in int8 (``--all-int8``),
calibrated on six of scikit-image's photos, and turns that file's islands to
float as `mobilevitv2 convert` does. On six other photos it reports each
file's mean absolute logit error against Keras, over the spread (standard
deviation) of the Keras logits, its top-1 agreement, and XNNPACK's partitions.
Writes benchmarks/results/int8_float_islands.{json,md}.

    python benchmarks/int8_float_islands.py
"""

import argparse
import os
import sys
import tempfile

import numpy as np

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.files import write_json, write_text
from mobilevitv2_tflite.convert import fixed_size_model, load_keras_model, tflite_content, xnnpack_delegation
from mobilevitv2_tflite.float_islands import float_islands_in_quantized

from common import machine, markdown_table

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINTS = os.path.join(HERE, "..", "tests", "fixtures", "cvnets")
TEST_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
CALIBRATION_PHOTOS = ("horse", "coins", "camera", "moon", "retina", "brick")
SIZE = 256


def photos(names):
    import skimage.data
    from PIL import Image

    images = []
    for name in names:
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        images.append(np.asarray(Image.fromarray(image[..., :3].astype(np.uint8)).resize((SIZE, SIZE)), np.float32))
    return np.stack(images)


def run_file(content, images):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=content).get_signature_runner()
    (name,) = runner.get_input_details()
    return np.concatenate([next(iter(runner(**{name: image[np.newaxis]}).values())) for image in images])


def measure(name, work):
    keras_path = os.path.join(work, f"{name}.keras")
    kmv.import_checkpoint(os.path.join(CHECKPOINTS, f"cvnets_{name}.pt"), name, keras_path)
    graph = fixed_size_model(load_keras_model(keras_path), precision="int8", outputs="logits")[0]
    test, calibration = photos(TEST_PHOTOS), photos(CALIBRATION_PHOTOS)
    reference = graph.predict(test, batch_size=1, verbose=0)
    all_int8 = tflite_content(graph, "int8", [[image[np.newaxis]] for image in calibration], float_islands=False)
    files = {"float islands": float_islands_in_quantized(all_int8), "all int8": all_int8}
    rows = []
    for kind, content in files.items():
        path = os.path.join(work, f"{name}_{kind.replace(' ', '_')}.tflite")
        with open(path, "wb") as file:
            file.write(content)
        logits = run_file(content, test)
        error = np.abs(logits - reference).mean() / reference.std()
        rows.append({"model": name, "int8": kind, "mean_logit_error_over_spread": round(float(error), 4),
                     "top1_agreement": round(float((logits.argmax(1) == reference.argmax(1)).mean()), 3),
                     "xnnpack_partitions": xnnpack_delegation(path).partitions})
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilevitv2_050", "mobilevit_xxs"])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "int8_float_islands"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.models:
            rows += measure(name, work)
    write_json(args.out + ".json", rows)
    text = "\n".join([
        f"The official reference checkpoints at {SIZE}x{SIZE}, int8 with float islands and with every op in int8, "
        f"one calibration (scikit-image: {', '.join(CALIBRATION_PHOTOS)}); errors on {', '.join(TEST_PHOTOS)}. "
        f"Measured on {machine()}. Command: `python benchmarks/int8_float_islands.py`.", "",
        *markdown_table(rows)]) + "\n"
    write_text(args.out + ".md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
