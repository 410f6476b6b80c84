"""The architectures as data: one table per model, read by the builders in ``models``.

Channel counts follow the official code (apple/ml-cvnets): MobileViTv2 scales a
base table by the width multiplier and rounds with ``make_divisible``; MobileViT
v1 has a table per variant.
"""

import dataclasses

from .layers import make_divisible


@dataclasses.dataclass(frozen=True)
class InvertedResidualStage:
    """``num_blocks`` inverted residuals; the first one has ``strides``."""

    channels: int
    num_blocks: int
    strides: int
    expansion: float


@dataclasses.dataclass(frozen=True)
class AttentionStage:
    """One strided inverted residual, then one MobileViT(v2) block of ``num_layers`` transformer layers."""

    channels: int
    strides: int
    expansion: float
    attention_dim: int
    num_layers: int
    ffn_dim: int
    num_heads: int | None = None  # MobileViT v1 only; v2's attention has no heads


@dataclasses.dataclass(frozen=True)
class Architecture:
    name: str
    family: str  # "mobilevitv2" or "mobilevit"
    stem_channels: int
    stages: tuple
    head_channels: int | None = None  # v1's 1x1 expansion before pooling
    classifier_dropout: float = 0.0
    patch_size: int = 2
    # How the official models were trained and evaluated.
    input_size: int = 256
    crop_fraction: float = 0.888
    interpolation: str = "bicubic"
    # What the paper and timm report (SPEC.md), shown by `mobilevitv2 info` and the README.
    reference_params: int | None = None
    reference_gmacs: float | None = None
    reference_top1: float | None = None

    @property
    def num_features(self):
        """Channels that reach the pooling layer."""
        return self.head_channels or self.stages[-1].channels


def mobilevitv2(width_multiplier, **reference):
    """MobileViTv2 at a width multiplier (0.5 to 2.0 in the paper)."""
    a = float(width_multiplier)
    stem = make_divisible(min(max(32 * a, 16), 64), 8, min_value=16)

    def attention_stage(channels, dim, layers):
        dim = make_divisible(dim * a)
        return AttentionStage(
            channels=make_divisible(channels * a), strides=2, expansion=2.0,
            attention_dim=dim, num_layers=layers, ffn_dim=int(2 * dim // 16 * 16))

    stages = (
        InvertedResidualStage(make_divisible(64 * a, 16), num_blocks=1, strides=1, expansion=2.0),
        InvertedResidualStage(make_divisible(128 * a), num_blocks=2, strides=2, expansion=2.0),
        attention_stage(256, 128, 2),
        attention_stage(384, 192, 4),
        attention_stage(512, 256, 3),
    )
    name = f"mobilevitv2_{round(a * 100):03d}"
    return Architecture(name=name, family="mobilevitv2", stem_channels=stem, stages=stages, **reference)


def mobilevit(variant, channels, attention_dims, expansion, head_channels, **reference):
    """MobileViT v1: ``channels`` of the five stages, ``attention_dims`` of the last three."""
    c1, c2, c3, c4, c5 = channels

    def attention_stage(out_channels, dim, layers):
        return AttentionStage(
            channels=out_channels, strides=2, expansion=expansion, attention_dim=dim,
            num_layers=layers, ffn_dim=2 * dim, num_heads=4)

    stages = (
        InvertedResidualStage(c1, num_blocks=1, strides=1, expansion=expansion),
        InvertedResidualStage(c2, num_blocks=3, strides=2, expansion=expansion),
        attention_stage(c3, attention_dims[0], 2),
        attention_stage(c4, attention_dims[1], 4),
        attention_stage(c5, attention_dims[2], 3),
    )
    return Architecture(
        name=f"mobilevit_{variant}", family="mobilevit", stem_channels=16, stages=stages,
        head_channels=head_channels, classifier_dropout=0.1, **reference)


ARCHITECTURES = {
    arch.name: arch
    for arch in (
        mobilevitv2(0.5, reference_params=1_370_593, reference_gmacs=0.465, reference_top1=70.18),
        mobilevitv2(0.75, reference_params=2_866_009, reference_gmacs=1.028, reference_top1=75.56),
        mobilevitv2(1.0, reference_params=4_901_841, reference_gmacs=1.812, reference_top1=78.09),
        mobilevitv2(1.25, reference_params=7_478_089, reference_gmacs=2.817, reference_top1=79.65),
        mobilevitv2(1.5, reference_params=10_594_753, reference_gmacs=4.042, reference_top1=80.38),
        mobilevitv2(1.75, reference_params=14_251_833, reference_gmacs=5.489, reference_top1=80.84),
        mobilevitv2(2.0, reference_params=18_449_329, reference_gmacs=7.156, reference_top1=81.17),
        mobilevit("xxs", (16, 24, 48, 64, 80), (64, 80, 96), expansion=2.0, head_channels=320,
                  reference_params=1_272_024, reference_gmacs=0.329, reference_top1=69.0),
        mobilevit("xs", (32, 48, 64, 80, 96), (96, 120, 144), expansion=4.0, head_channels=384,
                  reference_params=2_317_848, reference_gmacs=0.909, reference_top1=74.7),
        mobilevit("s", (32, 64, 96, 128, 160), (144, 192, 240), expansion=4.0, head_channels=640,
                  reference_params=5_578_632, reference_gmacs=1.823, reference_top1=78.3),
    )
}

MOBILEVITV2_WIDTHS = {0.5: "mobilevitv2_050", 0.75: "mobilevitv2_075", 1.0: "mobilevitv2_100",
                      1.25: "mobilevitv2_125", 1.5: "mobilevitv2_150", 1.75: "mobilevitv2_175",
                      2.0: "mobilevitv2_200"}
MOBILEVIT_VARIANTS = {"xxs": "mobilevit_xxs", "xs": "mobilevit_xs", "s": "mobilevit_s"}


def get_architecture(name):
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(ARCHITECTURES)}") from None
