"""The bundled sample: scikit-learn's handwritten digits written as an image folder."""

import os

import numpy as np

from ..files import atomic_output


def make_sample_data(out, overwrite=False):
    """Writes scikit-learn's 1,797 digits (8x8, 10 classes) as ``out/<digit>/<index>.png``.

    Returns the number of images. An existing non-empty ``out`` is refused unless
    ``overwrite``; images are written atomically, so an interrupted run can be repeated.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    out = os.fspath(out)
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty: choose another folder or pass --overwrite")
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    for index, (image, label) in enumerate(zip(images, digits.target)):
        folder = os.path.join(out, str(label))
        os.makedirs(folder, exist_ok=True)
        with atomic_output(os.path.join(folder, f"{index:04d}.png")) as temporary:
            Image.fromarray(image, mode="L").save(temporary, format="PNG")
    return len(images)
