import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# The official implementation's checkpoints and outputs (see fixtures/README.md).
OFFICIAL_REFERENCE = os.path.join(FIXTURES, "cvnets")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_images(rng, batch, height, width):
    """RGB images in [0, 255] as float32."""
    return rng.integers(0, 256, (batch, height, width, 3)).astype(np.float32)
