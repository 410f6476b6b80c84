"""SSD anchors (priors) exactly as cvnets makes them, and the feature-map sizes an input gives.

cvnets (``cvnets/anchor_generator/ssd_anchor_generator.py``): per level ``k``
the sizes ``s_k`` and ``sqrt(s_k * s_(k+1))`` from ``linspace(0.1, 1.05, n + 1)``,
then ``s_k * sqrt(r), s_k / sqrt(r)`` and its transpose for each aspect ratio
``r``; cells row-major (y, then x), a cell's anchors together; centre form
``(cx, cy, w, h)`` as fractions of the image, clipped to [0, 1] (widths too).
Computed in float64 as cvnets does, returned float32. The order is the order of
the SSD heads' outputs (NHWC reshaped to ``[B, H * W * anchors, ...]``, levels
concatenated).
"""

import numpy as np

OUTPUT_STRIDES = (16, 32, 64, 128, 256, -1)  # -1: the global level, one cell
ASPECT_RATIOS = ((2, 3),) * 5 + ((2,),)
MIN_SCALE, MAX_SCALE = 0.1, 1.05


def feature_map_sizes(height, width, output_strides=OUTPUT_STRIDES, architecture=None):
    """``[(rows, columns)]`` of each level for an input of ``height`` x ``width``.

    Every halving is a 3x3 stride-2 conv with padding 1 on each side, n -> ceil(n / 2)
    (320 -> 20, 10, 5, 3, 2, 1); the global level is 1 x 1. Without ``architecture``
    this is cvnets' ``ceil(size / stride)``, which its data loader uses to make the
    anchors. With it (a zoo name), strides 16 and 32 are the sizes that backbone
    gives (``backbone.feature_map_sizes``: a MobileViTv2 block rounds its map up to
    an even size) and the later levels halve P5: the maps the detector's heads see,
    which differ from ``ceil(size / stride)`` at some sizes (193 x 161).
    """
    backbone_sizes = {}
    if architecture is not None:
        from ..backbone import feature_map_sizes as backbone_sizes_of

        p4, p5 = (backbone_sizes_of(architecture, height, width)[level] for level in ("P4", "P5"))
        backbone_sizes = {16: p4, 32: p5}
    sizes = []
    for stride in output_strides:
        if stride == -1:
            sizes.append((1, 1))
            continue
        if stride < 1 or stride & (stride - 1):
            raise ValueError(f"output strides must be powers of two or -1, got {stride}")
        rows, columns, done = int(height), int(width), 1
        for known in sorted(backbone_sizes, reverse=True):
            if known <= stride:
                (rows, columns), done = backbone_sizes[known], known
                break
        while done < stride:
            rows, columns, done = (rows + 1) // 2, (columns + 1) // 2, done * 2
        sizes.append((rows, columns))
    return sizes


def _unique(ratios):
    # cvnets uses list(set(ratios)), which is [2, 3] for CPython's small ints: first occurrences, in order
    return list(dict.fromkeys(ratios))


def anchors_per_location(aspect_ratios=ASPECT_RATIOS):
    """Anchors per cell of each level: the SSD heads' ``n_anchors`` (6, 6, 6, 6, 6, 4 by default)."""
    return [2 + 2 * len(_unique(ratios)) for ratios in aspect_ratios]


def ssd_anchors(height, width, output_strides=OUTPUT_STRIDES, aspect_ratios=ASPECT_RATIOS, min_scale=MIN_SCALE,
                max_scale=MAX_SCALE, clip=True, architecture=None):
    """``[num_anchors, 4]`` float32 anchors ``(cx, cy, w, h)``, normalised, for an input of ``height`` x ``width``.

    3232 for 320 x 320 with the defaults (2400 + 600 + 150 + 54 + 24 + 4).
    ``architecture``: the detector's backbone (a zoo name), for the map sizes it
    gives at any input size (``feature_map_sizes``); a detector's own anchors.
    """
    if len(aspect_ratios) != len(output_strides):
        raise ValueError(f"{len(aspect_ratios)} aspect-ratio lists for {len(output_strides)} output strides")
    scales = np.linspace(min_scale, max_scale, len(output_strides) + 1)
    levels = []
    for level, ((rows, columns), ratios) in enumerate(zip(feature_map_sizes(height, width, output_strides,
                                                                            architecture), aspect_ratios)):
        small, big = scales[level], (scales[level] * scales[level + 1]) ** 0.5
        shapes = [(small, small), (big, big)]
        for ratio in _unique(ratios):
            root = ratio ** 0.5
            shapes += [(small * root, small / root), (small / root, small * root)]
        y, x = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(columns, dtype=np.float64), indexing="ij")
        centers = np.stack([(x.ravel() + 0.5) / columns, (y.ravel() + 0.5) / rows], axis=-1)
        shapes = np.asarray(shapes, np.float64)
        level_anchors = np.concatenate([np.repeat(centers[:, None], len(shapes), axis=1),
                                        np.broadcast_to(shapes, (len(centers), *shapes.shape))], axis=-1)
        levels.append(level_anchors.reshape(-1, 4))
    anchors = np.concatenate(levels)
    if clip:
        anchors = np.clip(anchors, 0.0, 1.0)
    return anchors.astype(np.float32)
