"""timm's models as the peer timings take them: random weights, eval mode, no branch that is zero.

timm initialises the last norm of every residual branch with a zero scale (``zero_init_last``), so a freshly
made model's residual branches output exactly zero and converters fold them away: litert-torch's file of a
fresh ``mobilevitv2_050`` lacks a whole inverted-residual block. Timed that way, timm's ports would do less
work than the model. Here every norm's scale is drawn from [0.5, 1.5], as trained weights would have it.
"""

import numpy as np
import timm
import torch


def random_timm_model(name, seed=0):
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)) and \
                module.weight is not None:
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
    return model.eval()


def calibration_inputs(path):
    """The images of an ``.npy`` of NHWC RGB in [0, 255] as timm's MobileViT takes them: NCHW float32 in [0, 1]
    (mean 0, std 1), batches of one; none without a path."""
    if not path:
        return None
    images = np.load(path, allow_pickle=False).astype(np.float32)
    return [np.ascontiguousarray(image.transpose(2, 0, 1)[np.newaxis] / 255.0) for image in images]
