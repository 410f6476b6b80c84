"""Training: the recipe's pieces, learning, resume after SIGKILL, two workers, bad data, the run directory."""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from keras_mobilevitv2.training import (AdamW, TrainConfig, choose_recipe, learning_rate_schedule, make_optimizer,
                                        train)

from conftest import ROOT
from data.test_data import make_bad_folder

WORKER = os.path.join(os.path.dirname(__file__), "worker.py")


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    """20 real handwritten digits per class, as an image folder."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    for label in range(10):
        os.makedirs(root / str(label))
        for n, index in enumerate(np.flatnonzero(digits.target == label)[:20]):
            image = np.round(digits.images[index] * 255 / 16).astype(np.uint8)
            Image.fromarray(image).save(root / str(label) / f"{n}.png")
    return str(root)


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as file:
        return list(csv.DictReader(file))


def test_schedule_warms_up_then_follows_the_cosine():
    config = TrainConfig(model="mobilevitv2_100", epochs=10, batch_size=256, recipe="official").resolved(100, 0, 0)[0]
    assert config.learning_rate == pytest.approx(0.0075 * 256 / 1024)
    assert config.min_learning_rate == pytest.approx(0.00075 * 256 / 1024)
    assert config.weight_decay == 0.013 and config.warmup_steps == 1000 // 15
    schedule = learning_rate_schedule(config, 100)
    lr = lambda step: float(schedule(step))  # noqa: E731
    assert lr(0) == pytest.approx(1e-6)
    assert lr(config.warmup_steps // 2) == pytest.approx((1e-6 + config.learning_rate) / 2, rel=0.02)
    assert lr(config.warmup_steps) == pytest.approx(config.learning_rate)
    decay = 1000 - config.warmup_steps
    middle = config.warmup_steps + decay // 2
    assert lr(middle) == pytest.approx((config.learning_rate + config.min_learning_rate) / 2, rel=0.01)
    assert lr(1000) == pytest.approx(config.min_learning_rate)


def test_width_tables_and_v1_recipe():
    imagenet = dict(steps_per_epoch=1251, images=1_281_167, classes=1000)
    assert TrainConfig(model="mobilevitv2_050", batch_size=1024).resolved(**imagenet)[0].learning_rate == \
        pytest.approx(0.009)
    assert TrainConfig(model="mobilevitv2_200").resolved(**imagenet)[0].weight_decay == 0.05
    assert TrainConfig(model="mobilevit_xs", batch_size=1024).resolved(**imagenet)[0].learning_rate == \
        pytest.approx(0.002)
    assert TrainConfig(epochs=300).resolved(**imagenet)[0].warmup_steps == 20_000


@pytest.mark.parametrize("task, images, classes, epochs, weights, expected, reason", [
    ("classification", 1_281_167, 1000, 300, False, "official", "like the official classification recipe's"),
    ("classification", 1_438, 10, 4, False, "small-data", "is for 100,000+ images and 30+ epochs"),
    ("classification", 1_281_167, 1000, 10, False, "small-data", "is for 30+ epochs"),
    ("classification", 5_000, 10, 30, True, "small-data", "weights loaded: the official recipe is for 100,000+"),
    ("segmentation", 10_582, 21, 50, True, "official", "like the official segmentation recipe's"),
    ("segmentation", 10_582, 21, 50, False, "small-data", "a backbone trained on ImageNet first (--init-from)"),
    ("segmentation", 24, 11, 10, True, "small-data", "is for 5,000+ images"),
    ("detection", 117_266, 80, 200, True, "official", "like the official detection recipe's"),
    ("detection", 300, 10, 8, False, "small-data", "is for 20,000+ images and 20+ epochs and a backbone"),
])
def test_the_recipe_is_chosen_from_the_data_epochs_and_weights(task, images, classes, epochs, weights, expected,
                                                                reason):
    name, why = choose_recipe(task, images, classes, epochs, weights)
    assert name == expected and reason in why, why


def test_small_data_recipe_scales_the_measured_rate_and_every_choice_stays_overridable():
    digits = dict(steps_per_epoch=45, images=1_438, classes=10)
    config, why = TrainConfig(model="mobilevitv2_050", epochs=30, batch_size=32).resolved(**digits)
    assert (config.recipe, config.augmentation) == ("small-data", "light") and "1,438 training images" in why
    assert config.learning_rate == pytest.approx(0.002) and config.min_learning_rate == pytest.approx(0.0002)
    assert config.augment_config().mixup_alpha == 0 and not config.augment_config().randaugment
    # the same at any batch, with weights loaded or not; the recipe's ratio for other widths
    assert TrainConfig(batch_size=128, epochs=4).resolved(**digits)[0].learning_rate == pytest.approx(0.002)
    fine_tune, why = TrainConfig(batch_size=32, epochs=4, init_from="m.keras").resolved(**digits)
    assert fine_tune.learning_rate == pytest.approx(0.002) and "weights loaded" in why
    assert TrainConfig(model="mobilevitv2_100", batch_size=32, epochs=4).resolved(**digits)[0].learning_rate == \
        pytest.approx(0.002 * 0.0075 / 0.009)
    segmentation = TrainConfig(model="deeplabv3_mobilevitv2_050", batch_size=8, epochs=10).resolved(3, 24, 11)[0]
    assert (segmentation.recipe, segmentation.learning_rate) == ("small-data", pytest.approx(0.004))
    voc = TrainConfig(model="deeplabv3_mobilevitv2_050", batch_size=8, epochs=50, init_from="imagenet.pt")
    voc, _ = voc.resolved(1323, 10_582, 21)
    assert (voc.recipe, voc.augmentation) == ("official", "recipe")
    assert voc.learning_rate == pytest.approx(0.0005 * 8 / 128)  # the VOC recipe, scaled to the batch
    # asked for: the official recipe's linear scaling and augmentation; or any flag
    official, why = TrainConfig(batch_size=32, epochs=4, recipe="official").resolved(**digits)
    assert official.learning_rate == pytest.approx(0.009 * 32 / 1024) and official.augmentation == "recipe"
    assert why == "asked for" and official.augment_config().mixup_alpha == 0.2
    chosen = TrainConfig(batch_size=32, epochs=4, learning_rate=0.01, augmentation="none").resolved(**digits)[0]
    assert (chosen.recipe, chosen.learning_rate, chosen.augmentation) == ("small-data", 0.01, "none")
    with pytest.raises(ValueError, match="unknown recipe 'big'"):
        TrainConfig(recipe="big").resolved(**digits)
    with pytest.raises(ValueError, match="chosen with the recipe"):
        TrainConfig().augment_config()


def test_no_weight_decay_on_norms_and_biases_and_ema_warms_up():
    model = kmv.create_model("mobilevitv2_050", input_shape=(32, 32, 3), classes=3)
    config = TrainConfig(learning_rate=0.1, weight_decay=0.5, warmup_steps=0, epochs=1, global_clipnorm=None,
                         ema_momentum=0.9995).resolved(10, 100, 3)[0]
    optimizer = make_optimizer(config, 10)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    optimizer.apply_gradients([(np.zeros(v.shape, np.float32), v) for v in variables])
    for variable, old in zip(variables, before):
        new = variable.numpy()
        name = variable.name
        if name in ("bias", "gamma", "beta"):
            np.testing.assert_array_equal(new, old, err_msg=variable.path)
        else:  # decoupled decay: w <- w - lr * wd * w
            np.testing.assert_allclose(new, old * (1 - 0.1 * 0.5), rtol=1e-5, atol=1e-7, err_msg=variable.path)
    # EMA: momentum min(0.9995, (1 + t) / (10 + t)) at step t (the step before this update).
    averages = [a.numpy().copy() for a in optimizer._model_variables_moving_average]
    snapshot = [v.numpy().copy() for v in variables]
    optimizer.apply_gradients([(np.ones(v.shape, np.float32), v) for v in variables])
    momentum = min(0.9995, 2 / 11)
    for variable, average_before, average in zip(variables, averages, optimizer._model_variables_moving_average):
        expected = momentum * average_before + (1 - momentum) * variable.numpy()
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert any(not np.array_equal(a, s) for a, s in zip(averages, snapshot))
    assert isinstance(optimizer, AdamW)


def test_digits_are_learned_with_the_defaults_and_the_run_directory_is_complete(tmp_path, capsys):
    from keras_mobilevitv2.data import make_sample_data

    make_sample_data(tmp_path / "digits")
    out = tmp_path / "run"
    # No tuning flag: the small-data recipe is chosen, said and recorded (the official one stays near chance).
    assert cli_main(["train", "--data", str(tmp_path / "digits"), "--out", str(out), "--model", "mobilevitv2_050",
                     "--image-size", "32", "--epochs", "6", "--batch-size", "32", "--val-split", "0.2",
                     "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "recipe: small-data (1,438 training images, 144 per class, 6 epochs: the official recipe is for " \
           "100,000+ images and 30+ epochs): augmentation light, peak lr 0.002" in printed, printed
    config = json.load(open(out / "config.json"))
    assert config["resolved"]["recipe"] == "small-data" and config["requested"]["recipe"] == "auto"
    assert "100,000+ images" in config["recipe_why"]
    rows = _history(str(out))
    assert len(rows) == 6
    assert float(rows[-1]["val_accuracy"]) >= 0.8, rows[-1]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    for name in ("model.keras", "history.csv", "training_curves.png", "config.json", "data_report.txt",
                 "checkpoints/ema.keras", "checkpoints/best.keras", "checkpoints/state.json", "tensorboard"):
        assert os.path.exists(out / name), name
    model = keras.saving.load_model(str(out / "model.keras"), safe_mode=True)
    facts = kmv.get_preprocessing(model)
    assert facts.class_names == tuple(str(i) for i in range(10)) and facts.input_size == (32, 32)
    assert getattr(model, "optimizer", None) is None  # an inference model
    best = json.load(open(out / "checkpoints" / "best.json"))
    assert best["value"] == pytest.approx(max(float(r["val_accuracy"]) for r in rows))
    # The saved model is the EMA model that was validated last: the one exported after the last epoch.
    last_validated = keras.saving.load_model(str(out / "checkpoints" / "ema.keras"), safe_mode=True)
    for saved, validated in zip(model.get_weights(), last_validated.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, validated)


def test_run_directory_is_never_overwritten_without_asking(tmp_path, small_digits, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    args = ["train", "--data", small_digits, "--out", str(out), "--image-size", "32", "--epochs", "1",
            "--batch-size", "16", "--augmentation", "none", "--quiet"]
    assert cli_main(args) == 2
    assert "exists: pass --resume" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite"]) == 2  # not a run directory: never deleted
    assert (out / "precious.txt").read_text() == "mine"
    assert cli_main(args + ["--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # Bad data fails before a run directory is made, so the same command works once the data is fixed.
    fresh = tmp_path / "fresh"
    assert cli_main(["train", "--data", str(tmp_path / "missing"), "--out", str(fresh), "--quiet"]) == 2
    assert "no such data folder" in capsys.readouterr().err and not fresh.exists()


def _environment(**extra):
    """This process's environment, with the checkout first on the path of the processes it starts."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), **extra}


def _run_worker(settings, check=True):
    return subprocess.run([sys.executable, WORKER, json.dumps(settings)], env=_environment(),
                          capture_output=True, text=True, check=check, timeout=900)


def test_resume_after_sigkill_continues_exactly(tmp_path, small_digits):
    settings = dict(data=small_digits, model="mobilevitv2_050", image_size=32, epochs=3, batch_size=16,
                    augmentation="recipe", val_split=0.2, learning_rate=0.002, deterministic=True, seed=7)
    _run_worker({**settings, "out": str(tmp_path / "straight")})
    killed = _run_worker({**settings, "out": str(tmp_path / "killed"), "kill_at": [2, 3]}, check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = json.load(open(tmp_path / "killed" / "checkpoints" / "state.json"))
    assert state["completed_epochs"] == 2
    assert not (tmp_path / "killed" / "model.keras").exists()
    _run_worker({**settings, "out": str(tmp_path / "killed"), "resume": True})
    straight, resumed = _history(str(tmp_path / "straight")), _history(str(tmp_path / "killed"))
    assert [r["epoch"] for r in resumed] == ["0", "1", "2"]
    for key in ("loss", "accuracy", "val_loss"):
        assert abs(float(straight[2][key]) - float(resumed[2][key])) <= 1e-5, key


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_two_workers(settings, tmp_path):
    """Trains with ``settings`` on two local workers (TF_CONFIG), each writing its final weights to
    ``tmp_path/w{i}.npz`` and its step losses to ``tmp_path/losses{i}.json``."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    processes = [
        subprocess.Popen(
            [sys.executable, WORKER, json.dumps({**settings, "weights_out": str(tmp_path / f"w{i}.npz"),
                                                 "losses_out": str(tmp_path / f"losses{i}.json")})],
            env=_environment(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]


def test_two_workers_train_as_one_process(tmp_path, small_digits):
    settings = dict(data=small_digits, model="mobilevitv2_050", image_size=32, epochs=1, batch_size=16,
                    augmentation="light", val_split=0.2, learning_rate=0.002, seed=3, deterministic=True)
    out = str(tmp_path / "distributed")
    run_two_workers({**settings, "out": out, "strategy": "multiworker"}, tmp_path)
    _run_worker({**settings, "out": str(tmp_path / "single"), "strategy": "default",
                 "weights_out": str(tmp_path / "single.npz"), "losses_out": str(tmp_path / "single.json")})
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["replicas"] == 2
    assert json.load(open(tmp_path / "losses0.json")) == json.load(open(tmp_path / "losses1.json"))
    distributed = json.load(open(tmp_path / "losses0.json"))
    single = json.load(open(tmp_path / "single.json"))
    assert len(distributed) == len(single) == 10
    # The first step: the same global batch, weights and synchronised BatchNorm give the same loss; the
    # second: the first update (gradients summed over the workers, clipped and scaled as on one device)
    # leaves the same weights, but for the rounding of gradients summed over two workers (1.0e-6 of the second
    # loss measured here). Wrong sharding or a doubled or halved update would show here.
    np.testing.assert_allclose(distributed[:1], single[:1], rtol=1e-6)
    np.testing.assert_allclose(distributed[:2], single[:2], rtol=1e-5)
    # Then the two halves of a batch summed apart round differently; Adam's first steps (nearly sign(g))
    # turn those roundings into differences that grow: 0.8% after 10 steps (a running mean) measured here.
    np.testing.assert_allclose(distributed, single, rtol=2e-2)


def test_a_folder_of_bad_files_trains_and_reports_them(tmp_path, rng, capsys):
    make_bad_folder(tmp_path / "data", rng)
    result = train(str(tmp_path / "data"), str(tmp_path / "run"), image_size=32, epochs=1, batch_size=4,
                   augmentation="recipe", val_split=0.25, verbose=0)
    err = capsys.readouterr().err
    assert "4 unreadable file(s)" in err and "truncated.jpg" in err and "zero.jpg" in err
    report = (tmp_path / "run" / "data_report.txt").read_text()
    assert "text.jpg" in report and "left out (the model gets 2 classes): empty" in report
    assert result.model.output_shape == (None, 2)


def test_fine_tuning_from_a_model_with_a_frozen_backbone(tmp_path, small_digits):
    source = kmv.create_model("mobilevitv2_050", input_shape=(32, 32, 3), classes=3, classifier_activation=None)
    source.save(tmp_path / "source.keras")
    result = train(small_digits, str(tmp_path / "run"), image_size=32, epochs=1, batch_size=16,
                   augmentation="none", val_split=0.2, init_from=str(tmp_path / "source.keras"), skip_head=True,
                   freeze_backbone=True, ema_momentum=0, verbose=0)
    tuned = result.model
    for layer in source.layers:
        if layer.weights and layer.name != "predictions":
            for before, after in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(before, after, err_msg=layer.name)
    assert tuned.get_layer("predictions").get_weights()[0].shape == (256, 10)
    with pytest.raises(ValueError, match="pass --skip-head"):
        train(small_digits, str(tmp_path / "run2"), image_size=32, epochs=1, batch_size=16, val_split=0.2,
              init_from=str(tmp_path / "source.keras"), verbose=0)


def test_init_from_an_official_checkpoint_keeps_its_backbone():
    from conftest import OFFICIAL_REFERENCE
    from keras_mobilevitv2.training import initialise

    model = kmv.create_model("mobilevitv2_050", input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    initialise(model, os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevitv2_050.pt"), skip_head=True)
    reference = kmv.create_model("mobilevitv2_050", classifier_activation=None)
    kmv.load_pytorch_checkpoint(reference, os.path.join(OFFICIAL_REFERENCE, "cvnets_mobilevitv2_050.pt"))
    np.testing.assert_array_equal(model.get_layer("layer5_1_proj_conv").get_weights()[0],
                                  reference.get_layer("layer5_1_proj_conv").get_weights()[0])


def test_mixed_precision_trains_and_saves_a_float32_model(tmp_path, small_digits):
    result = train(small_digits, str(tmp_path / "run"), image_size=32, epochs=1, batch_size=16,
                   augmentation="light", val_split=0.2, mixed_precision=True, verbose=0)
    assert all(w.dtype == "float32" for w in result.model.weights)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
    assert np.isfinite(float(_history(str(tmp_path / "run"))[0]["loss"]))
