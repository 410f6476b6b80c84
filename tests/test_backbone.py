"""The backbone seam: feature maps by level, output strides and dilation as the official code builds them."""

import numpy as np
import pytest

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.backbone import feature_map_sizes, feature_strides, stage_plans
from keras_mobilevitv2.models import create_backbone

from conftest import random_images


def _dilations(name, output_stride):
    return [(p.strides, p.depthwise_dilation, p.block_dilation) for p in stage_plans(name, output_stride)]


def test_mobilevitv2_dilates_as_cvnets():
    # DENSE.md 1.2: OS 16 removes layer 5's stride and dilates its block's local conv by 2;
    # OS 8 also layer 4's (block 2), and layer 5's inverted residual then runs at the earlier dilation 2.
    assert _dilations("mobilevitv2_050", 32) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1)]
    assert _dilations("mobilevitv2_050", 16) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 2)]
    assert _dilations("mobilevitv2_100", 8) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4)]


def test_mobilevit_v1_blocks_are_never_dilated():
    # cvnets passes the dilation to v1's inverted residual only, never to its MobileViT block.
    assert _dilations("mobilevit_xxs", 16) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 1)]
    assert _dilations("mobilevit_s", 8) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 1), (1, 2, 1)]


def test_feature_maps_by_level_have_the_strides_they_say():
    for output_stride in (32, 16, 8):
        backbone = create_backbone("mobilevitv2_050", output_stride, input_shape=(128, 64, 3))
        strides = feature_strides("mobilevitv2_050", output_stride)
        assert sorted(backbone.output) == ["P1", "P2", "P3", "P4", "P5"]
        for level, tensor in backbone.output.items():
            assert tuple(tensor.shape[1:3]) == (128 // strides[level], 64 // strides[level])
        assert strides["P5"] == output_stride


@pytest.mark.parametrize("name, output_stride", [("mobilevitv2_050", 32), ("mobilevitv2_050", 16),
                                                  ("mobilevit_xxs", 32)])
def test_map_sizes_at_sizes_the_strides_do_not_divide_are_the_built_ones(name, output_stride):
    """A MobileViTv2 block rounds its map up to an even size and keeps it; v1's resizes back."""
    backbone = create_backbone(name, output_stride, input_shape=(193, 161, 3))
    built = {level: tuple(tensor.shape[1:3]) for level, tensor in backbone.output.items()}
    assert feature_map_sizes(name, 193, 161, output_stride) == built
    if name.startswith("mobilevitv2") and output_stride == 32:
        assert built["P5"] == (8, 6)  # not ceil(193 / 32) x ceil(161 / 32) = 7 x 6
    if name.startswith("mobilevit_"):
        assert built["P5"] == (7, 6)


def test_layers_are_dilated_where_the_plan_says():
    model = kmv.create_model("deeplabv3_mobilevitv2_100", output_stride=8, input_shape=(64, 64, 3))
    dilation = {layer.name: layer.dilation_rate[0] for layer in model.layers if hasattr(layer, "dilation_rate")}
    assert dilation["layer4_0_depthwise_conv"] == 1 and dilation["layer4_1_local_dw_conv"] == 2
    assert dilation["layer5_0_depthwise_conv"] == 2 and dilation["layer5_1_local_dw_conv"] == 4
    assert dilation["layer3_1_local_dw_conv"] == 1
    assert model.get_layer("layer5_0_depthwise_conv").strides == (1, 1)


def test_the_classifier_reads_the_backbone_it_shares(rng):
    """Backbone weights copied by name from a classifier give the classifier's own stride-32 map."""
    classifier = kmv.create_model("mobilevitv2_050", include_top=False, input_shape=(96, 96, 3))
    backbone = create_backbone("mobilevitv2_050", 32, input_shape=(96, 96, 3))
    kmv.models.copy_weights(backbone, classifier)
    x = random_images(rng, 1, 96, 96)
    np.testing.assert_array_equal(np.asarray(backbone(x)["P5"]), np.asarray(classifier(x)))


def test_unsupported_output_stride_is_refused():
    with pytest.raises(ValueError, match="output_stride must be one of"):
        kmv.create_model("deeplabv3_mobilevitv2_050", output_stride=4)
