"""Semantic segmentation heads of the official models (cvnets): DeepLabv3, PSPNet and the auxiliary head.

Each head reads the backbone's maps by level (``backbone.backbone_features``):
DeepLabv3 and PSPNet the last (P5), the auxiliary head the one before (P4).
Convolutions followed by BatchNorm have no bias; heads use ReLU (the backbone
SiLU); dropouts are PyTorch's ``Dropout2d`` (whole channels). Their logits are
at the head's resolution; ``upsample_to_input`` resizes them to the image
(bilinear, ``align_corners=True`` as cvnets' final ``UpSample``).
"""

from ..layers import _layers_of, conv_norm_act

PSP_POOL_SIZES = (1, 2, 3, 6)


def _classifier(x, classes, name, logits_dtype=None):
    keras = _layers_of(x).keras
    return keras.layers.Conv2D(classes, 1, use_bias=True, name=name, dtype=logits_dtype,
                               kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))(x)


def deeplabv3_head(features, classes, atrous_rates=(6, 12, 18), channels=512, dropout=0.1, logits_dtype=None):
    """DeepLabv3: ASPP on P5 (a 1x1 branch, one 3x3 branch per atrous rate, image pooling),
    concatenated, projected to ``channels``, dropout, 1x1 classifier. Logits at P5's resolution."""
    x = features["P5"]
    layers = _layers_of(x)
    keras = layers.keras
    branches = [conv_norm_act(x, channels, 1, activation="relu", name="aspp_1x1")]
    for index, rate in enumerate(atrous_rates, start=1):
        branches.append(conv_norm_act(x, channels, 3, dilation_rate=rate, activation="relu",
                                      name=f"aspp_atrous{index}"))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_global_pool")(x)
    pooled = conv_norm_act(pooled, channels, 1, activation="relu", name="aspp_pool")
    # A bilinear resize from 1x1 is a broadcast, as in cvnets (align_corners=False).
    branches.append(layers.ResizeLike(align_corners=False, name="aspp_pool_broadcast")([pooled, x]))
    y = keras.layers.Concatenate(name="aspp_concat")(branches)
    y = conv_norm_act(y, channels, 1, activation="relu", name="aspp_project")
    if dropout:
        y = keras.layers.SpatialDropout2D(dropout, name="aspp_dropout")(y)
    return _classifier(y, classes, "seg_classifier", logits_dtype)


def pspnet_reduction_channels(in_channels, num_pools=len(PSP_POOL_SIZES)):
    """Channels of each pyramid branch, as cvnets computes them."""
    return in_channels // num_pools // 16 * 16


def pspnet_head(features, classes, pool_sizes=PSP_POOL_SIZES, channels=512, dropout=0.1, logits_dtype=None):
    """PSPNet: P5 and, per pool size p, PyTorch's adaptive average pooling to p x p, a 1x1 conv and
    an upsampling back (align_corners=True); concatenated, 3x3 fusion conv to ``channels``, dropout,
    1x1 classifier. Logits at P5's resolution."""
    x = features["P5"]
    layers = _layers_of(x)
    keras = layers.keras
    reduction = pspnet_reduction_channels(x.shape[-1], len(pool_sizes))
    branches = [x]
    for size in pool_sizes:
        y = layers.AdaptiveAveragePooling(size, name=f"psp_pool{size}")(x)
        y = conv_norm_act(y, reduction, 1, activation="relu", name=f"psp_branch{size}")
        branches.append(layers.ResizeLike(align_corners=True, name=f"psp_upsample{size}")([y, x]))
    y = keras.layers.Concatenate(name="psp_concat")(branches)
    y = conv_norm_act(y, channels, 3, activation="relu", name="psp_fusion")
    if dropout:
        y = keras.layers.SpatialDropout2D(dropout, name="psp_dropout")(y)
    return _classifier(y, classes, "seg_classifier", logits_dtype)


def aux_head(features, classes, dropout=0.1, logits_dtype=None):
    """The auxiliary head on P4, for the training loss only: 3x3 conv + BN + ReLU, dropout, 1x1 classifier."""
    x = features["P4"]
    keras = _layers_of(x).keras
    y = conv_norm_act(x, max(x.shape[-1] // 4, 128), 3, activation="relu", name="aux")
    if dropout:
        y = keras.layers.SpatialDropout2D(dropout, name="aux_dropout")(y)
    return _classifier(y, classes, "aux_classifier", logits_dtype)


def upsample_to_input(logits, image, align_corners=True, name="seg_upsample"):
    """Logits resized bilinearly to the height and width of ``image`` (the model's input).

    A fixed input size is written into the layer, so that the graph reads the
    image once (the conversion's row strips need a single reader).
    """
    layers = _layers_of(logits)
    size = tuple(image.shape[1:3])
    if None not in size:
        return layers.ResizeTo(size, align_corners=align_corners, name=name)(logits)
    return layers.ResizeLike(align_corners=align_corners, name=name)([logits, image])
