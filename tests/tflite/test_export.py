"""export-android: a converted model into the Android demo app, through the command users run."""

import os
import shutil

import pytest

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from mobilevitv2_tflite.convert import convert, tflite_content
from mobilevitv2_tflite.export import APP_MODEL

from conftest import ROOT


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    keras_path = str(root / "m.keras")
    kmv.create_model("mobilevitv2_050", input_shape=(32, 32, 3), class_names=["a", "b"],
                     classifier_activation=None).save(keras_path)
    convert(keras_path, str(root / "first.tflite"), precision="fp16")
    convert(keras_path, str(root / "second.tflite"))
    # A segmenter and a detector, with its post-processing in the file and without.
    kmv.create_model("deeplabv3_mobilevitv2_050", input_shape=(64, 64, 3), classes=3).save(root / "seg.keras")
    convert(str(root / "seg.keras"), str(root / "seg.tflite"))
    kmv.create_model("ssdlite_mobilevitv2_050", input_shape=(128, 128, 3), classes=2).save(root / "det.keras")
    for outputs in ("detections", "raw"):
        convert(str(root / "det.keras"), str(root / f"det_{outputs}.tflite"), outputs=outputs)
    bare = root / "bare.tflite"
    bare.write_bytes(tflite_content(kmv.create_model("mobilevitv2_050", input_shape=(32, 32, 3), classes=2)))
    return root


def test_export_puts_the_model_where_the_app_loads_it(models, tmp_path, capsys):
    app = tmp_path / "app_project"
    app.mkdir()
    (app / "settings.gradle.kts").write_text((open(os.path.join(ROOT, "android_demo", "settings.gradle.kts")).read()))
    first, second = str(models / "first.tflite"), str(models / "second.tflite")
    assert cli_main(["export-android", first, "--app", str(app)]) == 0
    destination = app / APP_MODEL
    assert destination.read_bytes() == open(first, "rb").read()
    assert "classification, mobilevitv2_050, fp16, input 32x32, 2 class names" in capsys.readouterr().out

    assert cli_main(["export-android", first, "--app", str(app)]) == 0  # the same model again: fine
    assert cli_main(["export-android", second, "--app", str(app)]) == 2  # another model: not without asking
    assert "--overwrite" in capsys.readouterr().err and destination.read_bytes() == open(first, "rb").read()
    assert cli_main(["export-android", second, "--app", str(app), "--overwrite"]) == 0
    assert destination.read_bytes() == open(second, "rb").read()

    # Every task: the app switches its view by the file's facts.
    for name, task in (("seg.tflite", "segmentation"), ("det_detections.tflite", "detection")):
        assert cli_main(["export-android", str(models / name), "--app", str(app), "--overwrite"]) == 0
        assert destination.read_bytes() == (models / name).read_bytes()
        assert f"wrote {destination}: {task}, mobilevitv2_050" in capsys.readouterr().out


@pytest.fixture
def app(tmp_path):
    """A copy of the demo project as it is in the repository: without a model a user exported into the real one."""
    copy = tmp_path / "android_demo"
    shutil.copytree(os.path.join(ROOT, "android_demo"), copy,
                    ignore=shutil.ignore_patterns("build", ".gradle", "local.properties", "*.tflite"))
    return copy


def test_export_refuses_what_the_app_could_not_use(models, app, tmp_path, capsys):
    files = sorted(app.rglob("*"))
    assert cli_main(["export-android", str(models / "bare.tflite"), "--app", str(app)]) == 2
    assert "no keras_mobilevitv2 metadata" in capsys.readouterr().err
    assert cli_main(["export-android", str(models / "m.keras"), "--app", str(app)]) == 2
    assert "not a TFLite model" in capsys.readouterr().err
    assert cli_main(["export-android", str(models / "det_raw.tflite"), "--app", str(app)]) == 2
    assert "a detector with its raw outputs" in capsys.readouterr().err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli_main(["export-android", str(models / "first.tflite"), "--app", str(elsewhere)]) == 2
    assert "not the Android demo project" in capsys.readouterr().err
    assert sorted(app.rglob("*")) == files and not (app / APP_MODEL).exists()  # nothing was written
    assert not any(elsewhere.iterdir())
