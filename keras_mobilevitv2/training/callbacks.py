"""What a run leaves in its directory, written atomically each epoch."""

import csv
import json
import math
import os
import sys
import time

import keras

from ..files import atomic_output, save_figure, write_json

STATE_FILE = "state.json"


def read_json(path):
    with open(path) as file:
        return json.load(file)


class RenameLogs(keras.callbacks.Callback):
    """Renames entries of the epoch's logs in place (``{"logits_miou": "miou"}``), before the callbacks after it
    read them: Keras names a metric of one output of a model with several after that output."""

    def __init__(self, names):
        super().__init__()
        self.names = dict(names)

    def on_epoch_end(self, epoch, logs=None):
        for old, new in self.names.items():
            if logs is not None and old in logs:
                logs[new] = logs.pop(old)


class ResumeCheckpoint(keras.callbacks.Callback):
    """After every epoch: the raw weights with the optimizer (moments, step, EMA), then the state.

    ``checkpoints/last-epochNNNN.weights.h5`` is written first, then
    ``checkpoints/state.json`` names it: a run killed at any moment resumes from
    the last epoch whose state was written. Older weight files are removed.
    Must run before ``SwapEMAWeights`` so that it saves the raw weights.
    """

    def __init__(self, checkpoint_dir, initial_state=None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.state = dict(initial_state or {})

    def on_epoch_end(self, epoch, logs=None):
        name = f"last-epoch{epoch + 1:04d}.weights.h5"
        with atomic_output(os.path.join(self.checkpoint_dir, name)) as temporary:
            self.model.save_weights(temporary)
        self.state.update(completed_epochs=epoch + 1, weights=name)
        write_json(os.path.join(self.checkpoint_dir, STATE_FILE), self.state)
        for old in os.listdir(self.checkpoint_dir):
            if old.startswith("last-epoch") and old != name:
                os.remove(os.path.join(self.checkpoint_dir, old))


class ModelExport(keras.callbacks.Callback):
    """After every epoch: the model as it is now (EMA weights, after ``SwapEMAWeights``) and the best one.

    ``export(path)`` is given by the trainer: it writes an inference model (float32,
    no optimizer, preprocessing facts inside) atomically. ``best.json`` records the
    best value and its epoch, so that a resumed run keeps comparing against it.
    """

    def __init__(self, export, checkpoint_dir, monitor="val_accuracy"):
        super().__init__()
        self.export = export
        self.checkpoint_dir = checkpoint_dir
        self.monitor = monitor
        self.best_path = os.path.join(checkpoint_dir, "best.json")
        self.best = read_json(self.best_path)["value"] if os.path.exists(self.best_path) else None

    def on_epoch_end(self, epoch, logs=None):
        self.export(os.path.join(self.checkpoint_dir, "ema.keras"))
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.best is None or value > self.best):
            self.best = float(value)
            self.export(os.path.join(self.checkpoint_dir, "best.keras"))
            write_json(self.best_path, {"monitor": self.monitor, "value": self.best, "epoch": epoch + 1})


class RunHistory(keras.callbacks.Callback):
    """``history.csv`` and ``training_curves.png``, rewritten whole after every epoch.

    Rows of epochs after ``initial_epoch`` (left by a run killed before its
    checkpoint) are dropped on resume, so that every epoch appears once.
    """

    def __init__(self, run_dir, initial_epoch=0, plot=True, curves=("loss", "accuracy")):
        super().__init__()
        self.curves = tuple(curves)
        self.csv_path = os.path.join(run_dir, "history.csv")
        self.plot_path = os.path.join(run_dir, "training_curves.png") if plot else None
        self.rows = []
        if initial_epoch and os.path.exists(self.csv_path):
            with open(self.csv_path, newline="") as file:
                self.rows = [r for r in csv.DictReader(file) if int(r["epoch"]) < initial_epoch]
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, "seconds": round(time.time() - self._started, 2)}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_output(self.csv_path) as temporary:
            with open(temporary, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=fields)
                writer.writeheader()
                writer.writerows(self.rows)
        if self.plot_path:
            plot_curves(self.rows, self.plot_path, self.curves)


def plot_curves(rows, path, curves=("loss", "accuracy")):
    """``curves`` (loss and accuracy, or mean IoU) against epoch, training and validation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4))
    for axis, metric in zip(axes, curves):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
            if values and len(values) == len(epochs):
                axis.plot(epochs, values, marker="o", markersize=3, label=label)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, path, dpi=100)


class EpochSummary(keras.callbacks.Callback):
    """One line per epoch: learning rate, losses, accuracies or mean IoU, and training images per second."""

    def __init__(self, images_per_epoch, stream=None):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.stream = stream or sys.stdout
        self._started = self._train_seconds = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()
        self._train_seconds = None

    def on_test_begin(self, logs=None):
        if self._started is not None and self._train_seconds is None:
            self._train_seconds = time.time() - self._started

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = self._train_seconds or (time.time() - self._started)
        optimizer = self.model.optimizer
        learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        parts = [f"epoch {epoch + 1}/{self.params.get('epochs', '?')}", f"lr {learning_rate:.3g}"]
        for key in ("loss", "box_loss", "class_loss", "accuracy", "top5", "miou", "val_loss", "val_accuracy",
                    "val_top5", "val_miou", "val_map", "val_ap50"):
            if key in logs and not math.isnan(float(logs[key])):
                parts.append(f"{key} {float(logs[key]):.4f}")
        parts.append(f"{self.images_per_epoch / max(seconds, 1e-9):.1f} images/s")
        print("  ".join(parts), file=self.stream, flush=True)
