"""Segmentation and detection train on two workers (MultiWorkerMirroredStrategy) as classification does."""

import json
import os

import numpy as np
import pytest

from keras_mobilevitv2.data import make_segmentation_sample_data
from keras_mobilevitv2.data.sample_detection import make_detection_sample_data

from test_train import run_two_workers


@pytest.mark.parametrize("task, model", [("segmentation", "deeplabv3_mobilevitv2_050"),
                                         ("detection", "ssdlite_mobilevitv2_050")])
def test_two_workers_train_a_dense_model_in_step(task, model, tmp_path):
    data = str(tmp_path / "data")
    if task == "segmentation":
        make_segmentation_sample_data(data, train_count=16, val_count=4)
    else:
        make_detection_sample_data(data, train_images=16, val_images=4)
    settings = dict(data=data, model=model, image_size=64, epochs=1, batch_size=8, augmentation="none",
                    learning_rate=0.002, seed=3, deterministic=True, strategy="multiworker", out=str(tmp_path / "run"))
    run_two_workers(settings, tmp_path)
    config = json.load(open(tmp_path / "run" / "config.json"))
    assert config["replicas"] == 2 and config["resolved"]["task"] == task
    # one global batch of 8 split 4 + 4, gradients all-reduced: both workers hold the same weights after each step
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    losses = [json.load(open(tmp_path / f"losses{i}.json")) for i in range(2)]
    assert losses[0] == losses[1] and len(losses[0]) == 2 and np.all(np.isfinite(losses[0]))
    assert os.path.isfile(tmp_path / "run" / "model.keras")
