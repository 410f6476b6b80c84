"""Golden data for the JVM module's tests, made by this package's own Python pipeline.

Writes to OUT_DIR: photos as PNG (scikit-learn's sample photos, a small one and
a synthetic one that must be enlarged), ``cases.json`` with the model facts
and the input tensor the Python evaluation transform makes of each photo
(``*.f32``, little-endian float32, and for integer inputs the quantized bytes),
a model converted by ``mobilevitv2 convert`` with its facts (``model.tflite``,
``facts.json``) and one without them, logits and quantized outputs with
Python's top-5, and a latency series with NumPy's average and p90.

For segmentation and detection (``dense.json``): the official DeepLabv3 and
SSDLite (the reference checkpoints in tests/fixtures/cvnets) imported and
converted by the CLI, their input tensors and raw outputs on real photos (a
landscape and a portrait one), and what ``mobilevitv2 predict`` writes for the
same photos (masks, class shares, detections in the image's pixels); the photo
as a camera sensor would give it, turned 90, 180 and 270 degrees; a category
mask resized by the Python reader; the colour palette.

    python android_demo/vision-core/src/test/make_golden.py OUT_DIR
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


REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[os.pardir] * 4, "tests", "fixtures", "cvnets")


def run_file(path, image):
    """The file's input tensor for ``image`` (as its Python reader prepares it: the whole image resized) and its
    outputs, raw as the interpreter gives them (quantized ones as they are), by signature name."""
    from ai_edge_litert.interpreter import Interpreter

    from keras_mobilevitv2.evaluation import prepare_detection_image
    from mobilevitv2_tflite.runtime import quantize_input, read_facts

    facts = read_facts(path)
    runner = Interpreter(model_path=path).get_signature_runner()
    (name, detail), = runner.get_input_details().items()
    x = prepare_detection_image(image, tuple(facts["input_size"]), facts["interpolation"])
    x = x * np.float32(facts["input_max"] / 255.0)
    outputs = runner(**{name: quantize_input(x[np.newaxis], detail)})
    return x, outputs, runner.get_output_details()


def write_dense(out, photos):
    """The segmentation and detection golden data (see the module's docstring); ``photos``: PNG names in ``out``."""
    from PIL import Image

    from keras_mobilevitv2.cli import main as cli
    from keras_mobilevitv2.data.detection import VOC_CLASSES
    from keras_mobilevitv2.data.segmentation import voc_palette
    from keras_mobilevitv2.evaluation import predict_mask
    from mobilevitv2_tflite.runtime import predict_detections, predict_segmentation

    def check(code):
        if code != 0:
            raise SystemExit("make_golden.py: the CLI failed (see above)")

    def save(array, name):
        array = np.asarray(array)
        little_endian = {"f": "<f4", "i": "<i4"}.get(array.dtype.kind) if array.itemsize > 1 else array.dtype
        array.astype(little_endian).tofile(os.path.join(out, name))
        return name

    ssdlite, deeplab = (os.path.join(out, name) for name in ("ssdlite", "deeplabv3"))
    check(cli(["import-weights", os.path.join(REFERENCE, "cvnets_ssdlite_mobilevitv2_050.pt"), "--model",
               "ssdlite_mobilevitv2_050", "--out", ssdlite + ".keras"]))
    check(cli(["convert", ssdlite + ".keras", "--out", ssdlite + ".tflite"]))
    labels = os.path.join(out, "voc_labels.json")  # PASCAL VOC's classes, as a user names them
    with open(labels, "w", encoding="utf-8") as file:
        json.dump(["background", *VOC_CLASSES], file)
    check(cli(["import-weights", os.path.join(REFERENCE, "cvnets_deeplabv3_mobilevitv2_050.pt"), "--model",
               "deeplabv3_mobilevitv2_050", "--labels", labels, "--out", deeplab + ".keras"]))
    check(cli(["convert", deeplab + ".keras", "--out", deeplab + "_fp32.tflite", "--image-size", "256"]))
    calibration = os.path.join(out, "calibration")
    os.makedirs(calibration, exist_ok=True)
    for photo in photos:
        Image.open(os.path.join(out, photo)).save(os.path.join(calibration, photo))
    check(cli(["convert", deeplab + ".keras", "--out", deeplab + "_int8.tflite", "--image-size", "128",
               "--precision", "int8", "--io-type", "int8", "--calibration-data", calibration,
               "--calibration-steps", "4"]))

    dense = {"detection": [], "segmentation": []}
    predicted = os.path.join(out, "predicted")
    for photo in photos:
        path = os.path.join(out, photo)
        image = np.asarray(Image.open(path).convert("RGB"))
        stem = os.path.splitext(photo)[0]
        x, outputs, _ = run_file(ssdlite + ".tflite", image)
        (_, json_path, _, _), = predict_detections(ssdlite + ".tflite", [path], predicted, score_threshold=0.3)
        dense["detection"].append({
            "image": photo, "model": "ssdlite.tflite", "min_score": 0.3, "input": save(x, f"{stem}_ssd_input.f32"),
            "predicted": os.path.relpath(json_path, out),
            **{name: save(outputs[name][0], f"{stem}_ssd_{name}.f32") for name in ("boxes", "classes", "scores")},
            "num_detections": float(np.ravel(outputs["num_detections"])[0])})
        for precision in ("fp32", "int8"):
            model = f"{deeplab}_{precision}.tflite"
            x, outputs, details = run_file(model, image)
            (name, logits), = outputs.items()
            scale, zero_point = details[name]["quantization"]
            (_, mask_path, _, shares), = predict_segmentation(model, [path], os.path.join(predicted, precision))
            dense["segmentation"].append({
                "image": photo, "model": os.path.basename(model), "input": save(x, f"{stem}_{precision}_input.f32"),
                "logits": save(logits[0], f"{stem}_{precision}_logits." + ("q8" if scale else "f32")),
                "shape": list(logits.shape[1:]), "scale": scale, "zero_point": zero_point,
                "mask": os.path.relpath(mask_path, out), "shares": shares})

    # A camera frame comes in the sensor's orientation, with the clockwise turn that makes it upright.
    upright = np.asarray(Image.open(os.path.join(out, photos[0])).convert("RGB"))
    dense["rotations"] = []
    for degrees in (90, 180, 270):
        name = f"sensor_{degrees}.png"
        save_png(np.rot90(upright, k=degrees // 90), os.path.join(out, name))
        dense["rotations"].append({"sensor": name, "degrees": degrees, "upright": photos[0]})

    # A file's category mask (--outputs mask) resized to a photo's size by the Python reader.
    rng = np.random.default_rng(1)
    category = rng.integers(0, 21, (7, 9)).astype(np.int32)
    reader = types.SimpleNamespace(outputs_mask=True, category_mask=lambda image: category)
    resized = predict_mask(reader, np.zeros((23, 31, 3), np.uint8))
    dense["category_mask"] = {"mask": save(category, "category.i32"), "height": 7, "width": 9,
                              "resized": save(resized.astype(np.int32), "category_resized.i32"),
                              "out_height": 23, "out_width": 31}
    dense["palette"] = voc_palette()
    with open(os.path.join(out, "dense.json"), "w", encoding="utf-8") as file:
        json.dump(dense, file, indent=1)


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
    save_png(np.rot90(load_sample_image("flower.jpg")), os.path.join(out, "flower_portrait.png"))
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
    write_dense(out, ["china.png", "flower_portrait.png"])
    print(f"golden data in {out}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(sys.argv[1])
