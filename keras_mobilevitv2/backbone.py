"""The backbone every task shares: the stem and five stages, with their feature maps by level.

``backbone_features`` adds the backbone's layers to a functional graph and
returns the output of each stage as ``{"P1": ..., "P5": ...}`` (keras-hub's
``pyramid_outputs`` convention: level k is stage k, stride 2^k in the
classification network). Dense-prediction heads take the maps they need; the
classifier takes P5. Layer names are the classification network's, so weights
load by name into any task.

``output_stride`` 16 or 8 keeps the later maps larger, as the official
segmentation models do (cvnets ``_make_mit_layer``): an attention stage that
would go past the output stride loses its stride and dilates instead. Its
inverted residual keeps the dilation the network had before (so it is
undilated when the first stage dilates), and a MobileViTv2 block dilates its
local depthwise convolution by the new rate. MobileViT v1's blocks are never
dilated in the official code.
"""

import dataclasses

from . import architectures
from .layers import conv_norm_act, inverted_residual, mobilevit_block, mobilevitv2_block

PYRAMID_LEVELS = ("P1", "P2", "P3", "P4", "P5")
OUTPUT_STRIDES = (8, 16, 32)
STEM_STRIDE = 2


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """How one stage is built for an output stride."""

    strides: int  # of the stage's first block
    depthwise_dilation: int  # of its inverted residuals' depthwise convolution
    block_dilation: int  # of its attention block's local convolution
    output_stride: int  # input size / this stage's map size


def stage_plans(architecture, output_stride=32):
    """One ``StagePlan`` per stage of ``architecture`` at ``output_stride`` (8, 16 or 32)."""
    if isinstance(architecture, str):
        architecture = architectures.get_architecture(architecture)
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    plans, stride, dilation = [], STEM_STRIDE, 1
    for stage in architecture.stages:
        strides, previous = stage.strides, dilation
        attention = isinstance(stage, architectures.AttentionStage)
        if attention and strides > 1 and stride * strides > output_stride:
            dilation *= strides
            strides = 1
        stride *= strides
        block_dilation = dilation if attention and architecture.family == "mobilevitv2" else 1
        plans.append(StagePlan(strides, previous if attention else 1, block_dilation, stride))
    return plans


def feature_strides(architecture, output_stride=32):
    """``{"P1": 2, ..., "P5": output_stride}``: the stride of each level's map."""
    return {level: plan.output_stride
            for level, plan in zip(PYRAMID_LEVELS, stage_plans(architecture, output_stride))}


def feature_map_sizes(architecture, height, width, output_stride=32):
    """``{"P1": (rows, columns), ..., "P5": ...}``: each level's map size for a ``height`` x ``width`` input.

    A stride-2 convolution (padding 1) gives ``ceil(n / 2)``. A MobileViTv2 block
    resizes its input up to a multiple of the patch size and keeps that size
    (cvnets ``resize_input_if_needed``); MobileViT v1's block resizes back. So a
    v2 model at 193 x 161 has P5 8 x 6, not ``ceil(size / 32)`` = 7 x 6.
    """
    if isinstance(architecture, str):
        architecture = architectures.get_architecture(architecture)
    patch = architecture.patch_size

    def halve(n, strides):
        return -(-n // strides)

    rows, columns = halve(int(height), STEM_STRIDE), halve(int(width), STEM_STRIDE)
    sizes = {}
    for level, stage, plan in zip(PYRAMID_LEVELS, architecture.stages, stage_plans(architecture, output_stride)):
        rows, columns = halve(rows, plan.strides), halve(columns, plan.strides)
        if isinstance(stage, architectures.AttentionStage) and architecture.family == "mobilevitv2":
            rows, columns = -(-rows // patch) * patch, -(-columns // patch) * patch
        sizes[level] = (rows, columns)
    return sizes


def backbone_features(x, architecture, output_stride=32):
    """Adds the stem and the five stages to the graph on ``x`` (a scaled image); returns the maps by level."""
    if isinstance(architecture, str):
        architecture = architectures.get_architecture(architecture)
    features = {}
    x = conv_norm_act(x, architecture.stem_channels, 3, strides=STEM_STRIDE, name="stem")
    plans = stage_plans(architecture, output_stride)
    for stage_index, (stage, plan) in enumerate(zip(architecture.stages, plans), start=1):
        prefix = f"layer{stage_index}"
        if isinstance(stage, architectures.InvertedResidualStage):
            for block in range(stage.num_blocks):
                x = inverted_residual(x, stage.channels, plan.strides if block == 0 else 1, stage.expansion,
                                      name=f"{prefix}_{block}")
        else:
            x = inverted_residual(x, stage.channels, plan.strides, stage.expansion, plan.depthwise_dilation,
                                  name=f"{prefix}_0")
            if architecture.family == "mobilevitv2":
                x = mobilevitv2_block(x, stage.attention_dim, stage.num_layers, stage.ffn_dim,
                                      architecture.patch_size, plan.block_dilation, name=f"{prefix}_1")
            else:
                x = mobilevit_block(x, stage.attention_dim, stage.num_layers, stage.ffn_dim,
                                    stage.num_heads, architecture.patch_size, name=f"{prefix}_1")
        features[PYRAMID_LEVELS[stage_index - 1]] = x
    return features
