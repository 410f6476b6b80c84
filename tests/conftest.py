import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# Session fixtures that train for minutes: every file using one runs in the same pytest-xdist process.
SHARED_SESSION_FIXTURES = ("digits_model",)
# The official implementation's checkpoints and outputs (see fixtures/README.md).
OFFICIAL_REFERENCE = os.path.join(FIXTURES, "cvnets")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_images(rng, batch, height, width):
    """RGB images in [0, 255] as float32."""
    return rng.integers(0, 256, (batch, height, width, 3)).astype(np.float32)


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """A mobilevitv2_050 trained twelve epochs on the digits at 32x32 (about 97% top-1), and its data.

    For the TFLite tests: a model with the margins of a trained one, so that what
    quantization costs is measured, not the coin flips of an undertrained model
    (at six epochs, 81% top-1, dynamic range flipped 1.2% of its predictions).
    """
    from keras_mobilevitv2.data import make_sample_data
    from keras_mobilevitv2.training import train

    root = tmp_path_factory.mktemp("digits")
    make_sample_data(root / "digits")
    train(str(root / "digits"), str(root / "run"), image_size=32, epochs=12, batch_size=32, augmentation="light",
          val_split=0.2, learning_rate=0.003, verbose=0)
    return str(root / "run" / "model.keras"), str(root / "digits")


def pytest_collection_modifyitems(config, items):
    """Groups the tests for pytest-xdist's two processes (pytest.ini: ``-n 2 --dist loadgroup``).

    A file's tests run in one process, so that its module fixtures are built once; the files
    that share a session fixture from SHARED_SESSION_FIXTURES run in one process with it.
    """
    if not config.pluginmanager.hasplugin("xdist"):
        return
    group_of_file = {}
    for item in items:
        file = item.nodeid.split("::")[0]
        shared = [name for name in SHARED_SESSION_FIXTURES if name in item.fixturenames]
        if shared:
            group_of_file[file] = shared[0]
        group_of_file.setdefault(file, file)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of_file[item.nodeid.split("::")[0]]))
