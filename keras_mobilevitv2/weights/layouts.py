"""Where each Keras layer's weights stand in the official (cvnets) and timm checkpoints.

Keras layers are named after where they sit (``layer3_1_transformer0_attn_key``,
``aspp_atrous1_conv``); ``torch_prefix`` turns such a name into the key prefix of
the same weights in a checkpoint of the given layout, for MobileViTv2 and
MobileViT v1 alike, classification and segmentation.
"""

import re

LAYOUTS = ("cvnets", "timm")

# Keys that identify a layout: the stem convolution's weight.
LAYOUT_MARKERS = {"cvnets": "conv_1.block.conv.weight", "timm": "stem.conv.weight"}

_CONV_NORM = {"cvnets": {"conv": "block.conv", "bn": "block.norm"}, "timm": {"conv": "conv", "bn": "bn"}}

_INVERTED_RESIDUAL_PARTS = {
    "cvnets": {"expand": "block.exp_1x1", "depthwise": "block.conv_3x3", "project": "block.red_1x1"},
    "timm": {"expand": "conv1_1x1", "depthwise": "conv2_kxk", "project": "conv3_1x1"},
}

# Parts of a transformer layer: cvnets differs between v2 (1x1 conv layers) and v1 (linear layers).
_TRANSFORMER_PARTS = {
    ("cvnets", "mobilevitv2"): {
        "attn_norm": "pre_norm_attn.0", "attn_qkv": "pre_norm_attn.1.qkv_proj.block.conv",
        "attn_out": "pre_norm_attn.1.out_proj.block.conv", "ffn_norm": "pre_norm_ffn.0",
        "ffn_fc1": "pre_norm_ffn.1.block.conv", "ffn_fc2": "pre_norm_ffn.3.block.conv"},
    ("cvnets", "mobilevit"): {
        "attn_norm": "pre_norm_mha.0", "attn_qkv": "pre_norm_mha.1.qkv_proj",
        "attn_out": "pre_norm_mha.1.out_proj", "ffn_norm": "pre_norm_ffn.0",
        "ffn_fc1": "pre_norm_ffn.1", "ffn_fc2": "pre_norm_ffn.4"},
    ("timm", "mobilevitv2"): {
        "attn_norm": "norm1", "attn_qkv": "attn.qkv_proj", "attn_out": "attn.out_proj",
        "ffn_norm": "norm2", "ffn_fc1": "mlp.fc1", "ffn_fc2": "mlp.fc2"},
    ("timm", "mobilevit"): {
        "attn_norm": "norm1", "attn_qkv": "attn.qkv", "attn_out": "attn.proj",
        "ffn_norm": "norm2", "ffn_fc1": "mlp.fc1", "ffn_fc2": "mlp.fc2"},
}

_BLOCK_PARTS = {
    # (layout, family) -> {keras part: checkpoint part}; "{conv_or_bn}" is filled from _CONV_NORM.
    ("cvnets", "mobilevitv2"): {
        "local_dw": "local_rep.0.{conv_or_bn}", "local_pw_conv": "local_rep.1.block.conv",
        "proj": "conv_proj.{conv_or_bn}"},
    ("cvnets", "mobilevit"): {
        "local": "local_rep.conv_3x3.{conv_or_bn}", "local_pw_conv": "local_rep.conv_1x1.block.conv",
        "proj": "conv_proj.{conv_or_bn}", "fusion": "fusion.{conv_or_bn}"},
    ("timm", "mobilevitv2"): {
        "local_dw": "conv_kxk.{conv_or_bn}", "local_pw_conv": "conv_1x1", "proj": "conv_proj.{conv_or_bn}"},
    ("timm", "mobilevit"): {
        "local": "conv_kxk.{conv_or_bn}", "local_pw_conv": "conv_1x1", "proj": "conv_proj.{conv_or_bn}",
        "fusion": "conv_fusion.{conv_or_bn}"},
}

# MobileViTv2's qkv projection (1 + 2d outputs) is three convolutions in Keras:
# each takes its rows of the checkpoint's one (query 1, key d, value d).
QKV_PARTS = ("attn_query", "attn_key", "attn_value")
for (_layout, _family), _parts in _TRANSFORMER_PARTS.items():
    if _family == "mobilevitv2":
        _parts.update(dict.fromkeys(QKV_PARTS, _parts["attn_qkv"]))


def qkv_part(layer_name):
    """0, 1 or 2 for the query, key or value projection of a MobileViTv2 transformer layer, else None."""
    for index, part in enumerate(QKV_PARTS):
        if layer_name.endswith(f"_{part}"):
            return index
    return None


def qkv_rows(array, part):
    """The query (0), key (1) or value (2) share of a qkv weight, along its last (output) axis."""
    total = array.shape[-1]
    dim = (total - 1) // 2
    start, stop = ((0, 1), (1, 1 + dim), (1 + dim, total))[part]
    return array[..., start:stop]


_STAGE_LAYER = re.compile(r"layer(\d+)_(\d+)_(.+)")
_TRANSFORMER = re.compile(r"transformer(\d+)_(.+)")
_CONV_OR_BN = re.compile(r"(.+)_(conv|bn)")


def _stage_prefix(layout, stage, block):
    if layout == "cvnets":
        return f"layer_{stage}.{block}"
    return f"stages.{stage - 1}.{block}"


_BACKBONE_LAYER = re.compile(r"(stem|layer\d+)_.+")
_SEGMENTATION_LAYER = re.compile(r"(aspp_1x1|aspp_atrous\d+|aspp_pool|aspp_project|psp_branch\d+|psp_fusion|aux)_(conv|bn)")


def is_backbone_layer(layer_name):
    """True for the layers of the shared backbone (stem and stages), whatever the task."""
    return bool(_BACKBONE_LAYER.fullmatch(layer_name))


def segmentation_head_prefix(layer_name, head):
    """The cvnets key prefix of a segmentation head layer (``seg_head.aspp.aspp_layer.convs.0.block.conv``).

    ``head``: ``{"atrous_rates": [...]}`` or ``{"pool_sizes": [...]}`` of the model, and
    ``legacy_classifier`` for cvnets v0.1's checkpoints (MobileViT v1's DeepLabv3), whose
    classifier sits one level deeper.
    """
    if layer_name == "seg_classifier":
        return "seg_head.classifier.classifier.block.conv" if head.get("legacy_classifier") \
            else "seg_head.classifier.block.conv"
    if layer_name == "aux_classifier":
        return "seg_head.aux_head.2.block.conv"
    match = _SEGMENTATION_LAYER.fullmatch(layer_name)
    if not match:
        raise KeyError(layer_name)
    part, kind = match[1], _CONV_NORM["cvnets"][match[2]]
    aspp = "seg_head.aspp.aspp_layer"
    if part == "aspp_1x1":
        return f"{aspp}.convs.0.{kind}"
    if part.startswith("aspp_atrous"):
        return f"{aspp}.convs.{int(part[len('aspp_atrous'):])}.{kind}"
    if part == "aspp_pool":
        return f"{aspp}.convs.{len(head['atrous_rates']) + 1}.aspp_pool.conv_1x1.{kind}"
    if part == "aspp_project":
        return f"{aspp}.project.{kind}"
    if part.startswith("psp_branch"):
        index = list(head["pool_sizes"]).index(int(part[len("psp_branch"):]))
        return f"seg_head.psp_layer.psp_branches.{index}.1.{kind}"
    if part == "psp_fusion":
        return f"seg_head.psp_layer.fusion.0.{kind}"
    return f"seg_head.aux_head.0.{kind}"


_DETECTION_LAYER = re.compile(r"(extra_os\d+|ssd_head\d+)_(dw|pw|proj)(?:_(conv|bn))?")


def detection_head_prefix(layer_name):
    """The cvnets key prefix of an SSDLite layer: the extra layers and the heads (``ssd_heads.0.proj_layer...``)."""
    if layer_name == "extra_global_conv":
        return "extra_layers.os_-1.1.block.conv"
    if re.fullmatch(r"ssd_head\d+_conv", layer_name):  # the global level's head: one 1x1 convolution
        return f"ssd_heads.{layer_name[len('ssd_head'):-len('_conv')]}.loc_cls_layer.block.conv"
    match = _DETECTION_LAYER.fullmatch(layer_name)
    if not match:
        raise KeyError(layer_name)
    owner, part, kind = match[1], match[2], _CONV_NORM["cvnets"][match[3] or "conv"]
    if owner.startswith("extra_os"):
        return f"extra_layers.os_{owner[len('extra_os'):]}.{part}_conv.{kind}"
    head = f"ssd_heads.{owner[len('ssd_head'):]}"
    if part == "proj":
        return f"{head}.proj_layer.{kind}"
    return f"{head}.loc_cls_layer.{part}_conv.{kind}"


def torch_prefix(layer_name, layout, family, num_transformer_layers=None, backbone_prefix="", head=None):
    """The checkpoint key prefix of a Keras layer's weights, e.g. ``layer_1.0.block.exp_1x1.block.conv``.

    ``num_transformer_layers`` of the layer's block is needed for the block's final
    norm in the cvnets layout (``global_rep.{L}``). ``backbone_prefix`` goes before
    the backbone's keys (``encoder.`` in cvnets' segmentation and detection
    checkpoints); ``head``: the task (``{"task": "detection"}``) and, for
    segmentation, the head's settings (see ``segmentation_head_prefix``).
    """
    if head is not None and not is_backbone_layer(layer_name):
        if layout != "cvnets":
            raise KeyError(layer_name)
        if head.get("task") == "detection":
            return detection_head_prefix(layer_name)
        return segmentation_head_prefix(layer_name, head)
    return backbone_prefix + _classification_prefix(layer_name, layout, family, num_transformer_layers)


def _classification_prefix(layer_name, layout, family, num_transformer_layers):
    conv_norm = _CONV_NORM[layout]
    if layer_name in ("stem_conv", "stem_bn", "head_conv", "head_bn"):
        part, kind = layer_name.split("_")
        base = {"cvnets": {"stem": "conv_1", "head": "conv_1x1_exp"},
                "timm": {"stem": "stem", "head": "final_conv"}}[layout][part]
        return f"{base}.{conv_norm[kind]}"
    if layer_name == "predictions":
        if layout == "timm":
            return "head.fc"
        return "classifier.1" if family == "mobilevitv2" else "classifier.fc"

    match = _STAGE_LAYER.fullmatch(layer_name)
    if not match:
        raise KeyError(layer_name)
    stage, block, rest = int(match[1]), int(match[2]), match[3]
    prefix = _stage_prefix(layout, stage, block)

    transformer = _TRANSFORMER.fullmatch(rest)
    if transformer:
        index, part = int(transformer[1]), transformer[2]
        container = "global_rep" if layout == "cvnets" else "transformer"
        return f"{prefix}.{container}.{index}.{_TRANSFORMER_PARTS[(layout, family)][part]}"
    if rest == "norm":
        if layout == "timm":
            return f"{prefix}.norm"
        if num_transformer_layers is None:
            raise ValueError("num_transformer_layers is needed for the cvnets layout's final norm")
        return f"{prefix}.global_rep.{num_transformer_layers}"

    block_parts = _BLOCK_PARTS[(layout, family)]
    if rest in block_parts:
        return f"{prefix}.{block_parts[rest]}"
    conv_or_bn = _CONV_OR_BN.fullmatch(rest)
    if conv_or_bn:
        part, kind = conv_or_bn[1], conv_or_bn[2]
        if part in _INVERTED_RESIDUAL_PARTS[layout]:
            return f"{prefix}.{_INVERTED_RESIDUAL_PARTS[layout][part]}.{conv_norm[kind]}"
        if part in block_parts:
            return f"{prefix}.{block_parts[part].format(conv_or_bn=conv_norm[kind])}"
    raise KeyError(layer_name)


# cvnets' dense-prediction models keep the classification backbone under this prefix.
BACKBONE_PREFIXES = ("", "encoder.")


def detect_layout(state_dict):
    """``"cvnets"`` or ``"timm"``, from the keys of a state dict; None if neither."""
    return next((layout for layout, marker in LAYOUT_MARKERS.items()
                 if any(prefix + marker in state_dict for prefix in BACKBONE_PREFIXES)), None)


def backbone_prefix(state_dict, layout):
    """What goes before the backbone's keys in a state dict of ``layout``: "" or "encoder."."""
    return next((prefix for prefix in BACKBONE_PREFIXES if prefix + LAYOUT_MARKERS[layout] in state_dict), "")


def checkpoint_task(state_dict):
    """What a cvnets / timm state dict holds: "classification", "segmentation" or "detection"."""
    if any(k.startswith("seg_head.") for k in state_dict):
        return "segmentation"
    if any(k.startswith(("ssd_heads.", "extra_layers.")) for k in state_dict):
        return "detection"
    return "classification"
