"""The official SSDLite outputs (fixtures/cvnets/cvnets_ssdlite_mobilevitv2_050.npz) and how to compare detections."""

import functools
import os

import numpy as np

from conftest import OFFICIAL_REFERENCE


@functools.lru_cache(maxsize=None)
def ssdlite_reference():
    with np.load(os.path.join(OFFICIAL_REFERENCE, "cvnets_ssdlite_mobilevitv2_050.npz")) as data:
        return {key: data[key] for key in data.files}


def unmatched(reference, found, tolerance=1e-3):
    """Reference detections with no counterpart in ``found`` (same label, score and box within ``tolerance``).

    Both are (boxes, labels, scores); each found detection answers one reference detection at most.
    """
    boxes, labels, scores = (np.asarray(a) for a in found)
    free = np.ones(len(labels), bool)
    missing = []
    for index, (box, label, score) in enumerate(zip(*reference)):
        close = (free & (labels == label) & (np.abs(scores - score) <= tolerance)
                 & (np.abs(boxes - box).max(axis=-1) <= tolerance))
        if not close.any():
            missing.append(index)
            continue
        free[np.flatnonzero(close)[0]] = False
    return missing
