"""Golden data for the JVM module's tests, made by this package's own Python pipeline.

Writes to OUT_DIR: photos as PNG (scikit-learn's sample photos, a small one and
a synthetic one that must be enlarged), ``cases.json`` with the model facts
and the input tensor the Python evaluation transform makes of each photo
(``*.f32``, little-endian float32, and for integer inputs the quantized bytes),
a model converted by ``mobilevitv2 convert`` with its facts (``model.tflite``,
``facts.json``) and one without them, logits and quantized outputs with
Python's top-5, and a latency series with NumPy's average and p90.

    python android_demo/classifier-core/src/test/make_golden.py OUT_DIR
"""

import json
import os
import sys
import types

import numpy as np


def save_png(array, path):
    from PIL import Image

    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def python_input(path, facts):
    """The float input ``mobilevitv2 eval`` / ``predict`` make of an image for a model with these facts."""
    from mobilevitv2_tflite.runtime import prepare_image

    model_like = types.SimpleNamespace(input_size=tuple(facts["input_size"]), facts=facts)
    return prepare_image(path, model_like).astype(np.float32) * np.float32(facts["input_max"] / 255.0)


def main(out):
    from sklearn.datasets import load_sample_image

    import keras_mobilevitv2 as kmv
    from mobilevitv2_tflite.convert import convert, tflite_content
    from mobilevitv2_tflite.metadata import read_metadata
    from mobilevitv2_tflite.runtime import quantize_input

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    from PIL import Image

    save_png(load_sample_image("china.jpg"), os.path.join(out, "china.png"))
    flower = Image.fromarray(load_sample_image("flower.jpg")).resize((97, 61), Image.BICUBIC)
    save_png(np.asarray(flower), os.path.join(out, "flower_small.png"))
    y, x = np.mgrid[0:37, 0:50]
    synthetic = np.stack([x * 5, y * 7, ((x // 5 + y // 5) % 2) * 255], axis=-1)  # gradients and a checkerboard
    save_png(synthetic, os.path.join(out, "synthetic.png"))

    def facts(size, crop, interpolation, input_max):
        return {"input_size": list(size), "crop_fraction": crop, "interpolation": interpolation,
                "input_max": input_max, "class_names": None, "architecture": "mobilevitv2_050"}

    cases = [
        ("china.png", facts((256, 256), 0.888, "bicubic", 255.0), None),
        ("china.png", facts((160, 224), 0.95, "bilinear", 255.0), None),
        ("flower_small.png", facts((64, 96), 1.0, "bilinear", 1.0), None),
        ("synthetic.png", facts((224, 224), 0.875, "bicubic", 255.0), {"scale": 0.75, "zero_point": 3, "signed": False}),
        ("flower_small.png", facts((48, 48), 0.888, "bicubic", 255.0), {"scale": 1.0, "zero_point": -128,
                                                                         "signed": True}),
    ]
    listed = []
    for index, (image, case_facts, quantization) in enumerate(cases):
        tensor = python_input(os.path.join(out, image), case_facts)
        name = f"case{index}"
        tensor.astype("<f4").tofile(os.path.join(out, name + ".f32"))
        entry = {"image": image, "facts": case_facts, "input": name + ".f32", "shape": list(tensor.shape)}
        if quantization:
            detail = {"dtype": np.int8 if quantization["signed"] else np.uint8,
                      "quantization": (quantization["scale"], quantization["zero_point"])}
            quantize_input(tensor, detail).tofile(os.path.join(out, name + ".q8"))
            entry.update(quantization=quantization, quantized=name + ".q8")
        listed.append(entry)
    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as file:
        json.dump(listed, file, indent=1)

    # A real converted model carries its facts; a bare converter output does not.
    model = kmv.create_model("mobilevitv2_050", input_shape=(32, 48, 3), classes=3,
                             class_names=["cat", "dog", "caf\u00e9 \"au lait\""], classifier_activation=None)
    model.save(os.path.join(out, "model.keras"))
    convert(os.path.join(out, "model.keras"), os.path.join(out, "model.tflite"), precision="fp16", overwrite=True)
    with open(os.path.join(out, "facts.json"), "w", encoding="utf-8") as file:
        json.dump(read_metadata(os.path.join(out, "model.tflite")), file)
    with open(os.path.join(out, "no_metadata.tflite"), "wb") as file:
        file.write(tflite_content(kmv.create_model("mobilevitv2_050", input_shape=(32, 32, 3), classes=3,
                                                    classifier_activation=None)))

    logits = rng.normal(0, 3, 1000).astype(np.float32)
    logits.astype("<f4").tofile(os.path.join(out, "logits.f32"))
    probabilities = np.exp(logits.astype(np.float64) - logits.max())
    probabilities /= probabilities.sum()
    top = np.argsort(-probabilities, kind="stable")[:5]
    raw = rng.integers(0, 256, 10).astype(np.uint8)
    raw.tofile(os.path.join(out, "output.u8"))
    dequantized = (raw.astype(np.float32) - np.float32(37)) * np.float32(0.0625)
    latency = rng.gamma(9.0, 2.0, 150)
    latency.astype("<f8").tofile(os.path.join(out, "latency.f64"))
    with open(os.path.join(out, "outputs.json"), "w", encoding="utf-8") as file:
        json.dump({"top5": top.tolist(), "top5_probabilities": probabilities[top].tolist(),
                   "output_scale": 0.0625, "output_zero_point": 37, "dequantized": dequantized.tolist(),
                   "dequantized_top3": np.argsort(-dequantized, kind="stable")[:3].tolist(),
                   "latency_window": 100, "latency_average": float(latency[-100:].mean()),
                   "latency_p90": float(np.percentile(latency[-100:], 90))}, file, indent=1)
    print(f"golden data in {out}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(sys.argv[1])
