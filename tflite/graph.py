"""Rewrites of a Keras 3 graph for conversion that compute the same function with less work or less memory traffic.

``fuse_pointwise_convolutions``: a linear 1x1 convolution (with its BatchNorm)
whose output feeds nothing but another 1x1 convolution is a matrix product
followed by a matrix product: one convolution does both. In MobileViTv2 this
is every projection that ends a block without a residual (layer 1's, and the
MobileViTv2 blocks' ``conv_proj``) followed by the next block's expansion; the
fused graph saves about 10% of the MACs of ``mobilevitv2_050`` and a round trip
of a 128x128 feature map through memory.

``tile_high_resolution_stages``: the stages before the first attention block,
run in row strips whose feature maps fit in the cache (large inputs only).

``rewrite_for_conversion`` applies both. The trained model is not changed: the
rewrites build a new graph for the converter, with the weights folded in
float64, and every value is the one the model computes.
"""

import collections
import dataclasses

import numpy as np


def _is_pointwise(layer):
    return (type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
            and getattr(layer, "groups", 1) == 1)


def _is_linear(layer):
    return getattr(layer.activation, "__name__", "") == "linear"


def _is_batch_norm(layer):
    return type(layer).__name__ == "BatchNormalization"


def _batch_norm_affine(layer):
    """Inference-mode BatchNorm as ``x * scale + shift`` per channel (float64)."""
    variance = np.asarray(layer.moving_variance, np.float64)
    scale = (np.asarray(layer.gamma, np.float64) if layer.scale else 1.0) / np.sqrt(variance + layer.epsilon)
    shift = (np.asarray(layer.beta, np.float64) if layer.center else 0.0) \
        - scale * np.asarray(layer.moving_mean, np.float64)
    return scale, shift


def _matrix_and_bias(layer):
    kernel = np.asarray(layer.kernel, np.float64)[0, 0]
    bias = np.asarray(layer.bias, np.float64) if layer.use_bias else np.zeros(kernel.shape[1])
    return kernel, bias


def _layer_nodes(model):
    """The layer calls of a Keras 3 functional model, each after the calls it reads from."""
    by_depth = model._nodes_by_depth  # noqa: SLF001 - Keras 3 keeps the graph here
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]
            if node.operation is not None and not node.is_input]


def _consumers(model):
    """The layers that read each tensor of a Keras 3 functional model, by tensor id."""
    consumers = collections.defaultdict(list)
    for node in _layer_nodes(model):
        for tensor in node.input_tensors:
            consumers[id(tensor)].append(node.operation)
    return consumers


def fuse_pointwise_convolutions(model):
    """A new Keras 3 model computing what ``model`` computes (in inference), adjacent 1x1 convolutions fused.

    Returns ``(model, fused)``: ``fused`` lists the layer names each new
    convolution replaces. A model with nothing to fuse is returned as it is.
    """
    import keras

    consumers = _consumers(model)
    model_outputs = {id(t) for t in model.outputs}

    def only_consumer(layer):
        found = consumers[id(layer.output)]
        return found[0] if len(found) == 1 and id(layer.output) not in model_outputs else None

    removed, replacements, fused = set(), {}, []
    for first in model.layers:
        if not (_is_pointwise(first) and _is_linear(first)) or first.name in removed or first.name in replacements:
            continue
        chain, following = [first], only_consumer(first)
        if following is not None and _is_batch_norm(following):
            chain.append(following)
            following = only_consumer(following)
        if following is None or not _is_pointwise(following) or following.name in removed:
            continue
        second, tail = following, [following]
        after = only_consumer(second) if _is_linear(second) else None
        if after is not None and _is_batch_norm(after):
            tail.append(after)

        kernel, bias = _matrix_and_bias(first)
        if len(chain) == 2:
            scale, shift = _batch_norm_affine(chain[1])
            kernel, bias = kernel * scale, bias * scale + shift
        second_kernel, second_bias = _matrix_and_bias(second)
        kernel, bias = kernel @ second_kernel, bias @ second_kernel + second_bias
        if len(tail) == 2:
            scale, shift = _batch_norm_affine(tail[1])
            kernel, bias = kernel * scale, bias * scale + shift
        # A BatchNorm after a non-linear second convolution stays; the fused convolution keeps the activation.
        convolution = keras.layers.Conv2D(kernel.shape[1], 1, activation=second.activation,
                                          name=f"{second.name}_fused", dtype=second.dtype_policy)
        convolution.build((None, None, None, kernel.shape[0]))
        convolution.set_weights([kernel[np.newaxis, np.newaxis].astype(np.float32), bias.astype(np.float32)])
        removed.update(layer.name for layer in chain + tail[1:])
        replacements[second.name] = convolution
        fused.append([layer.name for layer in chain + tail])
    if not fused:
        return model, []

    def operation(layer):
        if layer.name in removed:
            return lambda x, *args, **kwargs: x  # its work is inside the fused convolution
        return replacements.get(layer.name, layer)

    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in model.inputs]
    outputs = model._run_through_graph(inputs[0] if len(inputs) == 1 else inputs,  # noqa: SLF001
                                       operation_fn=operation)
    return keras.Model(inputs, outputs, name=model.name), fused


def plain_dilated_convolutions(model):
    """A new Keras 3 model with every ``AtrousConv2D`` (the tap-sum form that trains fast) replaced by Keras'
    Conv2D with the same settings and weights, which the converter makes one dilated CONV_2D; the model as it
    is when it has none."""
    import keras

    atrous = [layer for layer in model.layers if type(layer).__name__ == "AtrousConv2D"]
    if not atrous:
        return model
    replacements = {}
    for layer in atrous:
        plain = keras.layers.Conv2D.from_config(layer.get_config())
        plain.build(tuple(layer.input.shape))
        plain.set_weights(layer.get_weights())
        replacements[layer.name] = plain
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in model.inputs]
    outputs = model._run_through_graph(inputs[0] if len(inputs) == 1 else inputs,  # noqa: SLF001
                                       operation_fn=lambda layer: replacements.get(layer.name, layer))
    return keras.Model(inputs, outputs, name=model.name)


# ---------------------------------------------------------------------------
# Row strips for the high-resolution stages.
# ---------------------------------------------------------------------------

# One strip per 8 MiB of the largest float32 map: within 1% of the fastest count at every size from 384 to 1024
# on a 32 MiB-L3 host (benchmarks/row_strips.py; mobilevitv2_050 at 1024: 8 strips, 0.76 of the whole-image time).
STRIP_BYTES = 8 * 2**20
_PER_PIXEL = {"BatchNormalization", "Activation", "Add", "Multiply", "ReLU", "Rescaling", "Preprocessing"}
_WINDOWED = {"Conv2D", "DepthwiseConv2D", "ZeroPadding2D"}


def _is_local(layer):
    """Whether output row ``r`` of the layer depends on a window of input rows around ``r * stride`` only."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return False
    return kind in _PER_PIXEL or kind in _WINDOWED


def _window(layer, input_shape, output_shape):
    """``((extent, stride, before), (left, right))``: the layer's window along the rows, its column padding.

    Output row ``r`` reads the rows ``[r * stride, r * stride + extent)`` of the
    input with ``before`` zero rows added on top (Keras' "same" pads
    ``total // 2`` before, the rest after). A per-pixel layer is a window of
    extent 1; a ZeroPadding2D one of extent 1 with padding.
    """
    kind = type(layer).__name__
    if kind == "ZeroPadding2D":
        (top, _), columns = layer.padding
        return (1, 1, top), tuple(columns)
    if kind not in ("Conv2D", "DepthwiseConv2D"):
        return (1, 1, 0), (0, 0)
    padding = []
    for axis in range(2):
        extent = (layer.kernel_size[axis] - 1) * layer.dilation_rate[axis] + 1
        stride, size_in, size_out = layer.strides[axis], input_shape[1 + axis], output_shape[1 + axis]
        total = 0 if layer.padding == "valid" else max((size_out - 1) * stride + extent - size_in, 0)
        padding.append((extent, stride, total // 2, total - total // 2))
    (extent, stride, top, _), (_, _, left, right) = padding
    return (extent, stride, top), (left, right)


def _high_resolution_prefix(model):
    """The layers from the input up to the last tensor every later layer depends on alone, all of them local.

    Returns ``(nodes, cut)``: the prefix's nodes in order and the tensor that
    ends it, or ``([], None)`` when the model does not start with local layers.
    """
    if len(model.inputs) != 1:
        return [], None
    readers = {tensor: len(layers) for tensor, layers in _consumers(model).items()}
    live = {id(model.inputs[0]): readers.get(id(model.inputs[0]), 0)}  # tensor id -> readers still to come
    prefix, best = [], ([], None)
    for node in _layer_nodes(model):
        if not _is_local(node.operation) or any(id(t) not in live for t in node.input_tensors) \
                or len(node.outputs) != 1:
            break
        for tensor in node.input_tensors:
            live[id(tensor)] -= 1
            if not live[id(tensor)]:
                del live[id(tensor)]
        output = node.outputs[0]
        live[id(output)] = readers.get(id(output), 0)
        prefix.append(node)
        if list(live) == [id(output)]:
            best = (list(prefix), output)
    return best


def strips_for(model, strip_bytes=STRIP_BYTES):
    """How many row strips ``tile_high_resolution_stages`` should use: one per ``strip_bytes`` of the largest
    float32 feature map of the high-resolution stages (1: not tiled)."""
    nodes, cut = _high_resolution_prefix(model)
    if cut is None:
        return 1
    largest = max(4 * int(np.prod(node.outputs[0].shape[1:])) for node in nodes)
    return max(1, min(round(largest / strip_bytes), cut.shape[1]))  # a strip has at least one row of the cut


def _rows_needed(nodes, cut, top, bottom):
    """``{tensor id: (first, last)}``: the rows of every tensor of ``nodes`` that rows ``[top, bottom)`` of ``cut`` read."""
    needed = {id(cut): (top, bottom)}
    for node in reversed(nodes):
        low, high = needed[id(node.outputs[0])]
        (extent, stride, before), _ = _window(node.operation, node.input_tensors[0].shape, node.outputs[0].shape)
        for tensor in node.input_tensors:
            first = max(low * stride - before, 0)
            last = min((high - 1) * stride + extent - before, tensor.shape[1])
            if id(tensor) in needed:
                first, last = min(first, needed[id(tensor)][0]), max(last, needed[id(tensor)][1])
            needed[id(tensor)] = (first, last)
    return needed


def tile_high_resolution_stages(model, strips):
    """A new Keras 3 model computing what ``model`` computes, its high-resolution stages run in ``strips`` row strips.

    The layers from the input up to the first global layer (in these models the
    first attention block's resize) are local: an output row depends on a few
    input rows around it. Each strip computes its rows of that stage's output
    from the input rows they need (a halo of a few rows is computed twice), and
    the strips are concatenated before the rest of the network. Zero padding is
    added only at the image's real borders, so every value is the one the
    whole-image layers compute. Run one after another, a strip's feature maps
    stay in the cache: at 1024x1024 the maps of ``mobilevitv2_050``'s first
    stages are 16 to 64 MB, beyond the caches, and their memory traffic makes
    those stages cost half as much again per pixel as at 256x256.

    Returns ``(model, tiled)``, ``tiled`` naming the layers run in strips (empty,
    and the model returned as it is, when ``strips`` < 2 or nothing is local).
    """
    import keras

    from keras_mobilevitv2.layers import concatenate_in_groups

    nodes, cut = _high_resolution_prefix(model)
    if strips < 2 or cut is None:
        return model, []
    if strips > cut.shape[1]:
        raise ValueError(f"{strips} strips of {cut.shape[1]} rows ({nodes[-1].operation.name}'s output): "
                         f"at most {cut.shape[1]} at this image size")
    # Padding is added per strip, at the image's borders only; one valid convolution serves every strip.
    valid = {}
    for node in nodes:
        layer = node.operation
        if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D"):
            clone = type(layer).from_config({**layer.get_config(), "padding": "valid", "name": f"{layer.name}_strips"})
            clone.build(tuple(node.input_tensors[0].shape))
            clone.set_weights(layer.get_weights())
            valid[layer.name] = clone

    inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype, name=model.inputs[0].name)
    bounds = [round(i * cut.shape[1] / strips) for i in range(strips + 1)]
    pieces = []
    for top, bottom in zip(bounds[:-1], bounds[1:]):
        needed = _rows_needed(nodes, cut, top, bottom)
        held = {id(model.inputs[0]): (inputs, 0)}  # tensor id -> (this strip's tensor, the first row it holds)

        def rows(tensor, first, last):
            x, start = held[id(tensor)]
            if (first, last) == (start, start + x.shape[1]):
                return x
            return keras.layers.Cropping2D(((first - start, start + x.shape[1] - last), (0, 0)))(x)

        for node in nodes:
            layer, (low, high) = node.operation, needed[id(node.outputs[0])]
            if type(layer).__name__ in _WINDOWED:
                tensor = node.input_tensors[0]
                (extent, stride, before), columns = _window(layer, tensor.shape, node.outputs[0].shape)
                first, last = low * stride - before, (high - 1) * stride + extent - before
                x = rows(tensor, max(first, 0), min(last, tensor.shape[1]))
                padding = ((max(-first, 0), max(last - tensor.shape[1], 0)), columns)
                if any(any(side) for side in padding):
                    x = keras.layers.ZeroPadding2D(padding)(x)
                x = valid[layer.name](x) if layer.name in valid else x
            else:
                x = [rows(tensor, low, high) for tensor in node.input_tensors]
                x = layer(x if len(x) > 1 else x[0])
            held[id(node.outputs[0])] = (x, low)
        pieces.append(held[id(cut)][0])
    joined = concatenate_in_groups(pieces, axis=1)

    tiled = {id(node.operation) for node in nodes}
    cut_layer = nodes[-1].operation

    def operation(layer):
        if layer is cut_layer:
            return lambda *args, **kwargs: joined
        if id(layer) in tiled:
            return lambda *args, **kwargs: None  # computed in the strips
        return layer

    outputs = model._run_through_graph(inputs, operation_fn=operation)  # noqa: SLF001
    return keras.Model(inputs, outputs, name=model.name), [node.operation.name for node in nodes]


@dataclasses.dataclass
class GraphRewrites:
    """What ``rewrite_for_conversion`` changed."""
    fused: list = dataclasses.field(default_factory=list)  # the layers each fused 1x1 convolution replaced
    strips: int = 1  # row strips of the high-resolution stages (1: not tiled)
    tiled: list = dataclasses.field(default_factory=list)  # the layers run in strips

    def summary(self):
        lines = []
        if self.fused:
            lines.append(f"graph: {len(self.fused)} pairs of 1x1 convolutions fused into one")
        if self.tiled:
            lines.append(f"graph: {self.tiled[0]} to {self.tiled[-1]} ({len(self.tiled)} layers) "
                         f"run in {self.strips} row strips")
        return "\n".join(lines)


def check_strips(strips):
    """``strips`` is ``"auto"`` or a whole number >= 1, or a ValueError says what it is."""
    if strips != "auto" and (isinstance(strips, bool) or not isinstance(strips, int) or strips < 1):
        raise ValueError(f"strips must be 'auto' or a whole number >= 1, got {strips!r}")


def rewrite_for_conversion(model, precision="fp32", strips="auto"):
    """The graph to convert: dilated convolutions as Keras' own, 1x1 convolutions fused, high-resolution
    stages in row strips.

    ``strips``: ``"auto"`` (``strips_for``; none for ``int8``, whose maps are a
    quarter of the bytes: ``mobilevitv2_050`` at 1024 took 34.7 ms whole and 34.7
    to 35.7 ms in 2 to 8 strips, benchmarks/results/row_strips.md, and strips
    would give each strip's tensors their own calibration ranges), or a number
    (1: no strips). Returns ``(model, GraphRewrites)``.
    """
    check_strips(strips)
    rewrites = GraphRewrites()
    model, rewrites.fused = fuse_pointwise_convolutions(model)
    if strips == "auto":
        strips = 1 if precision == "int8" else strips_for(model)
    model, rewrites.tiled = tile_high_resolution_stages(model, strips)
    rewrites.strips = strips if rewrites.tiled else 1
    # Last: the passes above find a layer's readers through its first call, which a rebuilt graph changes.
    return plain_dilated_convolutions(model), rewrites
