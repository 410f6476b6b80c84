"""Import of official (cvnets) and timm checkpoints: parity, formats, safety, errors."""

import os
import pickle
import zipfile

import numpy as np
import pytest

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from keras_mobilevitv2.weights import (CheckpointError, CheckpointMismatchError, import_checkpoint,
                                       load_pytorch_checkpoint, read_checkpoint)
from keras_mobilevitv2.weights.layouts import detect_layout

from conftest import FIXTURES, OFFICIAL_REFERENCE

TIMM = os.path.join(FIXTURES, "timm")
OFFICIAL = {"mobilevitv2_050": "cvnets_mobilevitv2_050", "mobilevit_xxs": "cvnets_mobilevit_xxs"}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_checkpoints_import_with_exact_parity(name, tmp_path):
    """The official code's outputs, reproduced through the CLI and a safe-mode reload."""
    stem = os.path.join(OFFICIAL_REFERENCE, OFFICIAL[name])
    reference = np.load(stem + ".npz")
    out = str(tmp_path / f"{name}.keras")
    assert cli_main(["import-weights", stem + ".pt", "--model", name, "--out", out]) == 0
    model = keras.saving.load_model(out, safe_mode=True)
    logits = np.asarray(model(reference["x"] * 255.0))  # the saved model takes RGB in [0, 255]
    assert logits.shape == reference["logits"].shape
    assert np.abs(logits - reference["logits"]).max() <= 1e-4
    facts = kmv.get_preprocessing(model)
    assert (facts.input_size, facts.input_max, facts.crop_fraction, facts.architecture) == (
        (256, 256), 255.0, 0.888, name)


@pytest.mark.parametrize("name", ["mobilevitv2_050", "mobilevit_xxs"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("size", ["256x256", "224x224", "224x320"])
def test_timm_checkpoints_import_with_parity(name, suffix, size):
    reference = np.load(os.path.join(TIMM, f"{name}.npz"))
    height, width = (int(s) for s in size.split("x"))
    model = kmv.create_model(name, input_shape=(height, width, 3), classifier_activation=None)
    assert load_pytorch_checkpoint(model, os.path.join(TIMM, name + suffix)) == "timm"
    logits = np.asarray(model(reference[f"images_{size}"].astype(np.float32)))
    assert np.abs(logits - reference[f"logits_{size}"]).max() <= 1e-4


def test_tf_keras_models_load_checkpoints_too():
    reference = np.load(os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevitv2_050.npz"))
    model = kmv.create_model("mobilevitv2_050", classifier_activation=None, include_preprocessing=False,
                             keras_module="tf_keras")
    load_pytorch_checkpoint(model, os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevitv2_050.pt"))
    assert np.abs(np.asarray(model(reference["x"])) - reference["logits"]).max() <= 1e-4


def test_reader_handles_wrappers_prefixes_dtypes_and_strides():
    expected = np.load(os.path.join(TIMM, "formats.npz"))
    state = read_checkpoint(os.path.join(TIMM, "formats.pth"), prefer_ema=False)
    assert sorted(state) == ["bfloat16", "float16", "float32", "int64", "offset", "scalar", "strided"]
    for key, value in state.items():
        np.testing.assert_array_equal(value.astype(np.float32), expected[key])
    assert state["float16"].dtype == np.float16 and state["int64"].dtype == np.int64
    ema = read_checkpoint(os.path.join(TIMM, "formats.pth"))  # the EMA copy by default
    np.testing.assert_array_equal(ema["float32"], expected["ema_float32"])
    safetensors = read_checkpoint(os.path.join(TIMM, "formats.safetensors"))
    for key, value in safetensors.items():
        np.testing.assert_array_equal(value.astype(np.float32), expected[key])


class _RunsShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"weight": _RunsShellCommand(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refused to load (posix|os)\.system"):
        read_checkpoint(str(path))
    assert not marker.exists()
    assert cli_main(["import-weights", str(path), "--model", "mobilevit_xxs",
                     "--out", str(tmp_path / "m.keras")]) == 2
    assert not marker.exists() and not (tmp_path / "m.keras").exists()


def test_wrong_width_says_which_model_the_checkpoint_is():
    model = kmv.create_model("mobilevitv2_075")
    with pytest.raises(CheckpointMismatchError) as error:
        load_pytorch_checkpoint(model, os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevitv2_050.pt"))
    message = str(error.value)
    assert "looks like mobilevitv2_050" in message
    assert "conv_1.block.conv.weight: checkpoint (16, 3, 3, 3), model (24, 3, 3, 3)" in message


def test_wrong_family_lists_missing_and_unexpected_keys():
    model = kmv.create_model("mobilevit_xxs")
    with pytest.raises(CheckpointMismatchError) as error:
        load_pytorch_checkpoint(model, os.path.join(TIMM, "mobilevitv2_050.safetensors"))
    message = str(error.value)
    assert "missing (" in message and "unexpected (" in message and "looks like mobilevitv2_050" in message


def test_other_classes_need_skip_head_which_keeps_a_fresh_head(rng):
    checkpoint = os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevit_xxs.pt")
    model = kmv.create_model("mobilevit_xxs", classes=10, classifier_activation=None)
    with pytest.raises(CheckpointMismatchError, match="1000 classes and the model's 10: load with skip_head"):
        load_pytorch_checkpoint(model, checkpoint)
    head_before = [w.copy() for w in model.get_layer("predictions").get_weights()]
    load_pytorch_checkpoint(model, checkpoint, skip_head=True)
    for before, after in zip(head_before, model.get_layer("predictions").get_weights()):
        np.testing.assert_array_equal(before, after)
    # The backbone is the official one: its features match a full import's.
    full = kmv.create_model("mobilevit_xxs", classifier_activation=None)
    load_pytorch_checkpoint(full, checkpoint)
    x = rng.uniform(0, 255, (1, 256, 256, 3)).astype(np.float32)
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    full_features = keras.Model(full.input, full.get_layer("avg_pool").output)
    np.testing.assert_allclose(np.asarray(features(x)), np.asarray(full_features(x)), rtol=1e-5, atol=1e-6)


def test_import_with_labels_and_skip_head(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    out = tmp_path / "m.keras"
    import_checkpoint(os.path.join(TIMM, "mobilevit_xxs.pth"), "mobilevit_xxs", str(out), image_size=224,
                      labels=str(labels), skip_head=True)
    model = keras.saving.load_model(str(out), safe_mode=True)
    assert model.output_shape == (None, 3) and model.input_shape == (None, 224, 224, 3)
    assert kmv.get_preprocessing(model).class_names == ("cat", "dog", "bird")


def test_nothing_is_loaded_when_anything_does_not_fit():
    model = kmv.create_model("mobilevitv2_075")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(CheckpointMismatchError):
        load_pytorch_checkpoint(model, os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevitv2_050.pt"))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("hello, not weights"), "not a PyTorch checkpoint"),
    (lambda p: p.write_bytes(open(os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevit_xxs.pt"), "rb").read()[:400000]),
     "not a zip archive"),
    (lambda p: p.write_bytes(b"\x80\x02}q\x00."), "legacy"),
])
def test_unreadable_files_get_one_line_errors(tmp_path, capsys, make, message):
    path = tmp_path / "broken.pt"
    make(path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(str(path))
    assert cli_main(["import-weights", str(path), "--model", "mobilevit_xxs", "--out", str(tmp_path / "o.keras")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mobilevitv2 import-weights: error:") and message in err


def test_truncated_safetensors_is_refused(tmp_path):
    data = open(os.path.join(TIMM, "mobilevit_xxs.safetensors"), "rb").read()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(str(path))


def test_existing_output_is_never_overwritten_without_asking(tmp_path):
    out = tmp_path / "model.keras"
    out.write_bytes(b"precious")
    checkpoint = os.path.join(TIMM, "mobilevit_xxs.pth")
    assert cli_main(["import-weights", checkpoint, "--model", "mobilevit_xxs", "--out", str(out)]) == 2
    assert out.read_bytes() == b"precious"
    # A failing import with --overwrite leaves the old file as it was.
    assert cli_main(["import-weights", checkpoint, "--model", "mobilevitv2_050", "--out", str(out),
                     "--overwrite"]) == 2
    assert out.read_bytes() == b"precious"
    assert cli_main(["import-weights", checkpoint, "--model", "mobilevit_xxs", "--out", str(out),
                     "--overwrite"]) == 0
    assert zipfile.is_zipfile(out)
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]  # no temporary files left behind


def test_layout_detection():
    assert detect_layout(read_checkpoint(os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevit_xxs.pt"))) == "cvnets"
    assert detect_layout(read_checkpoint(os.path.join(TIMM, "mobilevit_xxs.pth"))) == "timm"
    assert detect_layout({"fc.weight": np.zeros(1)}) is None
