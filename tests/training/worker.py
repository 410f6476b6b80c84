"""Runs ``train`` in its own process for the tests: resume after SIGKILL, multi-worker runs.

    python worker.py '{"data": ..., "out": ..., ..., "kill_at": [epoch, batch], "weights_out": "w.npz",
                       "losses_out": "losses.json"}'

``losses_out`` gets the running mean of the training loss after every batch, as Keras logs it.
"""

import json
import os
import signal
import sys

import numpy as np

import keras
from keras_mobilevitv2.training import train


class KillAt(keras.callbacks.Callback):
    """SIGKILLs this process after ``batch`` of ``epoch``: no clean-up, as a crash or an OOM kill."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.kill_epoch, self.kill_batch, self.epoch = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.kill_epoch and batch == self.kill_batch:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    settings = json.loads(sys.argv[1])
    kill_at = settings.pop("kill_at", None)
    weights_out = settings.pop("weights_out", None)
    losses_out = settings.pop("losses_out", None)
    losses = []
    callbacks = [keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: losses.append(float(logs["loss"])))]
    if kill_at:
        callbacks.append(KillAt(*kill_at))
    result = train(callbacks=callbacks, verbose=0, **settings)
    if losses_out:
        with open(losses_out, "w") as file:
            json.dump(losses, file)
    if weights_out:
        np.savez(weights_out, *result.model.get_weights())


if __name__ == "__main__":
    main()
