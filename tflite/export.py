"""A converted model into the Android demo app, where it loads it from."""

import os
import shutil

from keras_mobilevitv2.files import atomic_output

from .metadata import read_metadata

APP_MODEL = os.path.join("app", "src", "main", "assets", "model.tflite")


def export_android(model, app="android_demo", overwrite=False):
    """Copies ``model`` (a ``.tflite`` from ``convert``, of any task) to the app's assets as ``model.tflite``.

    The app reads everything else (task, input size, preprocessing, labels,
    what the file outputs, quantization) from the file, so only files that
    carry the facts are taken, and detectors only with their post-processing inside.
    A different model already in the app is replaced only with ``overwrite``.
    Returns the destination path.
    """
    model, app = os.fspath(model), os.fspath(app)
    if not os.path.isfile(model):
        raise FileNotFoundError(f"{model}: no such model file")
    if not os.path.isfile(os.path.join(app, "settings.gradle.kts")):
        raise FileNotFoundError(f"{app}: not the Android demo project (no settings.gradle.kts)")
    try:
        facts = read_metadata(model)
    except Exception as error:  # noqa: BLE001 - any parse failure means: not a TFLite file
        raise ValueError(f"{model}: not a TFLite model ({error})") from None
    if facts is None:
        raise ValueError(f"{model}: no keras_mobilevitv2 metadata; convert it with `mobilevitv2 convert` so that "
                         f"the app can read its input size, preprocessing and labels")
    if facts.get("task") == "detection" and facts.get("outputs") != "detections":
        raise ValueError(f"{model}: a detector with its raw outputs; the app draws final detections: convert it "
                         f"with `--outputs detections` (the default), which puts the post-processing in the file")
    destination = os.path.join(app, APP_MODEL)
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    if os.path.exists(destination):
        if os.path.samefile(destination, model):
            return destination, facts
        with open(destination, "rb") as old, open(model, "rb") as new:
            same = old.read() == new.read()
        if not same and not overwrite:
            raise FileExistsError(f"{destination} holds another model: pass --overwrite to replace it")
    with atomic_output(destination) as temporary:
        shutil.copyfile(model, temporary)
    return destination, facts
