"""The kit's .tflite files in MediaPipe Tasks, read with no code: the standard TFLite Metadata does it.

MediaPipe 1.2 pins absl-py apart from tensorflow-model-optimization, so it runs from a virtualenv of its
own (made once, beside this environment's packages, in ~/.cache or $MOBILEVITV2_MEDIAPIPE_VENV) through
``mediapipe_tasks.py``.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras_mobilevitv2 as kmv
from mobilevitv2_tflite.convert import convert
from mobilevitv2_tflite.metadata import read_standard_metadata_of
from mobilevitv2_tflite.runtime import TFLiteClassifier, predict, prepare_image

MEDIAPIPE = ["mediapipe==1.2.0", "absl-py~=2.3"]
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mediapipe_tasks.py")


@pytest.fixture(scope="module")
def mediapipe_python():
    """The Python of a virtualenv with MediaPipe Tasks: $MOBILEVITV2_MEDIAPIPE_VENV as it is, or one made on
    first use in ~/.cache (a lock keeps two runs apart; a half-made one is made again)."""
    if os.environ.get("MOBILEVITV2_MEDIAPIPE_VENV"):
        return os.path.join(os.environ["MOBILEVITV2_MEDIAPIPE_VENV"], "bin", "python")
    venv = os.path.join(os.path.expanduser("~"), ".cache", "keras_mobilevitv2", "mediapipe-1.2")
    python, ready = os.path.join(venv, "bin", "python"), os.path.join(venv, ".ready")
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(ready):
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", *MEDIAPIPE], check=True)
            open(ready, "w").close()
    return python


def run_task(python, task, model, images):
    command = [python, RUNNER, task, str(model), *map(str, images)]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, GLOG_minloglevel="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of real photos (scikit-image's), to calibrate int8 files on."""
    import skimage

    folder = tmp_path_factory.mktemp("calibration")
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png"):
        Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", name)).convert("RGB").save(
            folder / f"{name.split('.')[0]}.png")
    return str(folder)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real photo (scikit-image's chelsea), 300 x 451."""
    import skimage

    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", "chelsea.png")).convert("RGB").save(path)
    return path


def test_image_classifier_reads_float32_and_int8_files(mediapipe_python, digits_model, photo, tmp_path):
    model_path, data = digits_model
    names = [str(i) for i in range(10)]
    files = {"fp32": convert(model_path, str(tmp_path / "fp32.tflite")).path,
             "int8": convert(model_path, str(tmp_path / "int8.tflite"), precision="int8", calibration_data=data,
                             calibration_steps=50, io_type="uint8").path}
    for precision, path in files.items():
        metadata = read_standard_metadata_of(path)
        assert metadata.name == b"ImageClassifier" and metadata.minParserVersion == b"1.0.0"
        classifier = TFLiteClassifier(path)
        assert classifier.output_kind == "probabilities"

        # The whole image at the input size: MediaPipe feeds the same pixels as the kit, with the normalisation
        # the metadata states, and shows the file's probabilities with the model's label names.
        size = classifier.input_size
        exact = tmp_path / f"exact_{precision}.png"
        Image.open(photo).resize(size[::-1], Image.BICUBIC).save(exact)
        mediapipe, = run_task(mediapipe_python, "classify", path, [exact])
        assert sorted(c["name"] for c in mediapipe) == names
        scores = classifier.scores(np.asarray(Image.open(exact), np.float32))
        by_index = np.array([c["score"] for c in sorted(mediapipe, key=lambda c: c["index"])])
        tolerance = 1e-5 if precision == "fp32" else 1 / 256 + 1e-6  # an int8 file's probabilities are 8-bit
        assert np.abs(by_index - scores).max() <= tolerance, precision
        assert abs(by_index.sum() - 1) <= 0.02  # probabilities, not logits

        # predict's probabilities for a photo of another size are what MediaPipe shows for the photo prepared
        # as predict prepares it (resized to cover the input, centre crop; MediaPipe itself resizes the whole
        # image or region of interest it is given): the same pixels (measured: equal).
        (_, top), = predict(path, [photo], top=10)
        prepared = tmp_path / f"prepared_{precision}.png"
        Image.fromarray(np.clip(np.round(prepare_image(str(photo), classifier)), 0, 255).astype(np.uint8)).save(prepared)
        mediapipe, = run_task(mediapipe_python, "classify", path, [prepared])
        shown = {c["name"]: c["score"] for c in mediapipe}
        assert max(abs(shown[name] - probability) for name, probability in top) <= tolerance
        # The same top three, up to ties (an int8 file's probabilities are 8-bit: equal ones come in either order).
        assert [c["score"] for c in mediapipe[:3]] == pytest.approx([p for _, p in top[:3]], abs=tolerance)


def test_image_segmenter_reads_segmentation_files(mediapipe_python, photo, photos, tmp_path):
    from keras_mobilevitv2.evaluation import predict_mask
    from mobilevitv2_tflite.runtime import TFLiteSegmenter

    model = kmv.create_model("deeplabv3_mobilevitv2_050", input_shape=(128, 128, 3), classes=4,
                             class_names=["background", "cat", "dog", "bird"])
    model.save(tmp_path / "seg.keras")
    exact = tmp_path / "exact.png"
    Image.open(photo).resize((128, 128), Image.BICUBIC).save(exact)
    image = np.asarray(Image.open(exact).convert("RGB"))
    # Logits at the input size and at the head's resolution (the default), which MediaPipe resizes itself; the
    # int8 file's are dequantized in the file (float input and output).
    for outputs, precision in (("logits", "fp32"), ("head-logits", "fp32"), ("head-logits", "int8")):
        path = convert(str(tmp_path / "seg.keras"), str(tmp_path / f"{outputs}_{precision}.tflite"), outputs=outputs,
                       precision=precision, calibration_data=photos if precision == "int8" else None).path
        metadata = read_standard_metadata_of(path)
        assert metadata.name == b"ImageSegmenter" and metadata.minParserVersion == b"1.5.0"
        result, = run_task(mediapipe_python, "segment", path, [exact])
        assert result["labels"] == ["background", "cat", "dog", "bird"]
        expected = predict_mask(TFLiteSegmenter(path), image)
        assert np.mean(np.array(result["category_mask"]) == expected) >= 0.99, (outputs, precision)
        low, high = result["confidence_sum"]
        assert 0.99 <= low <= high <= 1.01  # the metadata's softmax turns the logits into confidences


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_object_detector_reads_detection_files(mediapipe_python, photo, photos, precision, tmp_path):
    from conftest import OFFICIAL_REFERENCE
    from keras_mobilevitv2.cli import main as cli_main
    from keras_mobilevitv2.evaluation import detect
    from mobilevitv2_tflite.runtime import TFLiteDetector

    # The official SSDLite (its reference weights), its post-processing inside the file.
    keras_path, path = str(tmp_path / "ssdlite.keras"), str(tmp_path / "ssdlite.tflite")
    assert cli_main(["import-weights", os.path.join(OFFICIAL_REFERENCE, "cvnets_ssdlite_mobilevitv2_050.pt"),
                     "--model", "ssdlite_mobilevitv2_050", "--out", keras_path]) == 0
    assert cli_main(["convert", keras_path, "--out", path, "--score-threshold", "0.3", "--precision", precision]
                    + (["--calibration-data", photos] if precision == "int8" else [])) == 0
    detector = TFLiteDetector(path)
    # A photo at the input size: the same pixels in both. (For other sizes MediaPipe letterboxes, keeping the
    # aspect ratio; the kit resizes to the input size, as cvnets evaluates.)
    exact = tmp_path / "exact.png"
    Image.open(photo).resize(detector.input_size[::-1], Image.BICUBIC).save(exact)
    ours = detect(detector, np.asarray(Image.open(exact).convert("RGB")), score_threshold=0.3)
    theirs, = run_task(mediapipe_python, "detect", path, [exact])
    # MediaPipe's boxes are whole pixels, origin and size each rounded down (so the far corner by up to 2);
    # it clips boxes that cross the border its own way.
    height, width = detector.input_size
    inside = np.all((ours["boxes"] > 1) & (ours["boxes"] < [width - 1, height - 1] * 2), axis=1)
    assert inside.mean() >= 0.5 and len(ours["labels"]) >= 5
    if precision == "fp32":  # the same detections in the same order
        assert [d["name"] for d in theirs] == [detector.class_names[k - 1] for k in ours["labels"]]
        assert np.abs(np.array([d["score"] for d in theirs]) - ours["scores"]).max() <= 1e-5
        assert np.abs(np.array([d["box"] for d in theirs])[inside] - ours["boxes"][inside]).max() <= 2.0
    else:  # scores in steps of 1/256 tie, and ties come in either order: matched as sets
        unmatched = list(range(len(theirs)))
        for label, score, box, whole in zip(ours["labels"], ours["scores"], ours["boxes"], inside):
            same = [i for i in unmatched if theirs[i]["name"] == detector.class_names[label - 1]
                    and abs(theirs[i]["score"] - score) <= 1e-5
                    and (not whole or np.abs(np.array(theirs[i]["box"]) - box).max() <= 2.0)]
            if same:
                unmatched.remove(same[0])
        # (MediaPipe 1.2 left out 4 of 189 int8 detections, all of them kept by the file's own op.)
        assert not unmatched and len(theirs) >= 0.95 * len(ours["labels"]), (len(theirs), len(ours["labels"]))
