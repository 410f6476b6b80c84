"""SSDLite, the official detection head (cvnets ``models/detection/ssd.py``, ``modules/ssd_heads.py``).

Six feature maps: the backbone's P4 and P5 (strides 16 and 32), three extra
layers (separable, stride 2, PyTorch's symmetric padding: strides 64, 128, 256)
and a global level. Each has a head: a 1x1 projection (+ BN + ReLU) where its
channels differ from the head's, a 3x3 depthwise convolution + BN, and a 1x1
convolution with bias giving, per cell and anchor, 4 box numbers (tx, ty, tw,
th) then the class logits, interleaved anchor by anchor as cvnets lays them
out; the global level's head is one 1x1 convolution. Cells are flattened row
by row, levels concatenated: the anchor order of ``detection.anchors``.
"""

from ..detection.anchors import anchors_per_location
from ..layers import _layers_of, concatenate_in_groups, conv_norm_act

EXTRA_CHANNELS = (256, 128, 128)  # the stride-64, 128 and 256 layers
GLOBAL_CHANNELS = 64
PROJECTION_CHANNELS = (512, 256, 256, 128, 128, 64)
BOX_CODES = 4


def ssdlite_feature_maps(features):
    """The six maps the heads read: P4, P5, the three extra layers and the global level."""
    x = features["P5"]
    keras = _layers_of(x).keras
    maps = [features["P4"], x]
    for stride, channels in zip((64, 128, 256), EXTRA_CHANNELS):
        x = conv_norm_act(x, x.shape[-1], 3, strides=2, depthwise=True, activation=None, name=f"extra_os{stride}_dw")
        x = conv_norm_act(x, channels, 1, activation="relu", name=f"extra_os{stride}_pw")
        maps.append(x)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="extra_global_pool")(x)
    maps.append(conv_norm_act(x, GLOBAL_CHANNELS, 1, use_norm=False, use_bias=False, activation="relu",
                              name="extra_global"))
    return maps


def ssdlite_head(maps, classes, logits_dtype=None):
    """``(box_regressions [B, A, 4], class_logits [B, A, classes])`` from the six maps; ``classes`` counts the
    background (class 0)."""
    layers = _layers_of(maps[0])
    keras = layers.keras
    values = BOX_CODES + classes
    per_level = []
    for level, (x, projection, anchors) in enumerate(zip(maps, PROJECTION_CHANNELS, anchors_per_location())):
        name = f"ssd_head{level}"
        last = level == len(maps) - 1
        if not last:
            if x.shape[-1] != projection:
                x = conv_norm_act(x, projection, 1, activation="relu", name=f"{name}_proj")
            x = conv_norm_act(x, x.shape[-1], 3, depthwise=True, activation=None, name=f"{name}_dw")
        x = keras.layers.Conv2D(anchors * values, 1, use_bias=True, dtype=logits_dtype,
                                name=f"{name}_conv" if last else f"{name}_pw")(x)
        per_level.append(keras.layers.Reshape((-1, values), name=f"{name}_anchors")(x))
    outputs = concatenate_in_groups(per_level, axis=1, name="ssd_concat")  # XNNPACK runs it whole
    return layers.SplitChannels((BOX_CODES, classes), name="ssd_split")(outputs)
