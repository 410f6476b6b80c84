"""Layers and blocks of MobileViT and MobileViTv2, written once for Keras 3 and tf_keras.

The network is built from Keras' own Conv2D, DepthwiseConv2D, BatchNormalization
and LayerNormalization wherever they fit, so that TFLite and quantization-aware
training treat them as they treat any convolution. Custom layers hold only what
Keras lacks: the one-group norm, the patch unfold and fold, the resizes the
official code does, the token mixing of both attentions, and the preprocessing
facts. None of them owns weights of another layer, and all serialise.

Tensors of tokens are laid out ``[batch, N, P, channels]``: N patches (the
tokens that attend to each other) by P pixel positions inside a patch, so that
a 1x1 Conv2D is a per-token linear layer and nothing exceeds rank 4.

The block functions (``inverted_residual``, ``mobilevitv2_block``, ...) take a
Keras tensor and build under whichever Keras package made that tensor.
"""

import functools
import types

import numpy as np
import tensorflow as tf

from . import backend

PACKAGE = "keras_mobilevitv2"
BATCH_NORM_EPSILON = 1e-5  # PyTorch's default; Keras' is 1e-3
BATCH_NORM_MOMENTUM = 0.9  # PyTorch momentum 0.1
NORM_EPSILON = 1e-5


def _static_or_dynamic_dims(x, axes):
    """The sizes of ``axes`` of ``x``: Python ints where known, scalar tensors otherwise."""
    dynamic = tf.shape(x)
    return [x.shape[a] if x.shape[a] is not None else dynamic[a] for a in axes]


def _resize_bilinear(x, size, align_corners):
    # align_corners=True is PyTorch's align_corners=True; False is PyTorch's
    # default, half-pixel centres.
    resized = tf.raw_ops.ResizeBilinear(
        images=x, size=size, align_corners=align_corners, half_pixel_centers=not align_corners
    )
    return tf.cast(resized, x.dtype)


def adaptive_pooling_matrix(size, bins):
    """``[bins, size]``: row i averages PyTorch's adaptive-pooling bin i of an axis of ``size`` (float64)."""
    matrix = np.zeros((bins, size))
    for i in range(bins):
        start, stop = i * size // bins, -(-(i + 1) * size // bins)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


@functools.cache
def layers_for(keras_module="keras"):
    """The layer classes, built on the chosen Keras package (see ``backend``)."""
    keras = backend.get_keras(keras_module)
    register = keras.utils.register_keras_serializable(package=PACKAGE)

    @register
    class Preprocessing(keras.layers.Layer):
        """Scales the input image and carries the model's preprocessing facts.

        ``rescale`` multiplies the input (1/255 when the model takes RGB in
        [0, 255], 1 when it takes [0, 1]). The other fields are not used in the
        graph: they say how images must be prepared for this model, and travel
        in the saved file (see ``keras_mobilevitv2.preprocessing``).
        """

        def __init__(self, rescale=1.0 / 255.0, input_size=(256, 256), crop_fraction=0.888,
                     interpolation="bicubic", class_names=None, architecture=None, task="classification",
                     head=None, **kwargs):
            super().__init__(**kwargs)
            self.rescale = float(rescale)
            self.input_size = tuple(int(s) for s in input_size)
            self.crop_fraction = float(crop_fraction)
            self.interpolation = str(interpolation)
            self.class_names = None if class_names is None else [str(c) for c in class_names]
            self.architecture = architecture
            self.task = str(task)
            self.head = None if head is None else dict(head)

        def call(self, inputs):
            if self.rescale == 1.0:
                return inputs
            return inputs * tf.cast(self.rescale, inputs.dtype)

        def get_config(self):
            config = super().get_config()
            config.update(
                rescale=self.rescale,
                input_size=list(self.input_size),
                crop_fraction=self.crop_fraction,
                interpolation=self.interpolation,
                class_names=self.class_names,
                architecture=self.architecture,
                task=self.task,
                head=self.head,
            )
            return config

    @register
    class OneGroupNorm(keras.layers.Layer):
        """GroupNorm with one group: normalises over all positions and channels of a sample.

        This is the "layer_norm_2d" of the official MobileViTv2, not a per-token
        LayerNorm. Written out (mean, variance, scale) so that TFLite gets plain
        builtin ops and no BROADCAST_TO with a dynamic batch.
        """

        def __init__(self, epsilon=NORM_EPSILON, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = float(epsilon)

        def build(self, input_shape):
            channels = int(input_shape[-1])
            self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
            super().build(input_shape)

        def call(self, inputs):
            x = tf.cast(inputs, tf.float32)
            mean = self._sample_mean(x)
            centred = x - mean
            # centred * centred, not tf.square: TFLite would fuse the latter with the
            # subtraction into SQUARED_DIFFERENCE, which XNNPACK does not take in int8.
            variance = self._sample_mean(centred * centred)
            normalised = centred * tf.math.rsqrt(variance + self.epsilon)
            outputs = normalised * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)
            return tf.cast(outputs, inputs.dtype)

        @staticmethod
        def _sample_mean(x):
            """The mean over all positions and channels of each sample, as the mean over positions, then
            over channels: equal in float, and XNNPACK's int8 MEAN over positions and channels at once
            is wrong when its input and output are quantized differently (a variance of 16.0 for 7.1)."""
            positions = list(range(1, len(x.shape) - 1))
            return tf.reduce_mean(tf.reduce_mean(x, axis=positions, keepdims=True), axis=-1, keepdims=True)

        def get_config(self):
            config = super().get_config()
            config.update(epsilon=self.epsilon)
            return config

    @register
    class ResizeToMultiple(keras.layers.Layer):
        """Resizes a feature map bilinearly up to the next multiple of ``multiple`` in H and W.

        The official code does this before unfolding when the map is not divisible
        by the patch size (7x7 at a 224 input). A map that is already divisible is
        returned unchanged (a same-size bilinear resize is the identity).
        """

        def __init__(self, multiple=2, align_corners=True, **kwargs):
            super().__init__(**kwargs)
            self.multiple = int(multiple)
            self.align_corners = bool(align_corners)

        def call(self, inputs):
            height, width = _static_or_dynamic_dims(inputs, (1, 2))
            if isinstance(height, int) and isinstance(width, int):
                if height % self.multiple == 0 and width % self.multiple == 0:
                    return inputs
                size = [-(-height // self.multiple) * self.multiple, -(-width // self.multiple) * self.multiple]
            else:
                size = tf.stack([(height + self.multiple - 1) // self.multiple * self.multiple,
                                 (width + self.multiple - 1) // self.multiple * self.multiple])
            return _resize_bilinear(inputs, size, self.align_corners)

        def get_config(self):
            config = super().get_config()
            config.update(multiple=self.multiple, align_corners=self.align_corners)
            return config

    @register
    class ResizeLike(keras.layers.Layer):
        """Resizes ``inputs[0]`` bilinearly to the height and width of ``inputs[1]``.

        MobileViT v1 resizes its folded map back to the size it had before unfolding.
        """

        def __init__(self, align_corners=False, **kwargs):
            super().__init__(**kwargs)
            self.align_corners = bool(align_corners)

        def call(self, inputs):
            x, reference = inputs
            size = _static_or_dynamic_dims(reference, (1, 2))
            if all(isinstance(s, int) for s in size) and tuple(x.shape[1:3]) == tuple(size):
                return x
            return _resize_bilinear(x, size if all(isinstance(s, int) for s in size) else tf.stack(size),
                                    self.align_corners)

        def get_config(self):
            config = super().get_config()
            config.update(align_corners=self.align_corners)
            return config

    @register
    class AdaptiveAveragePooling(keras.layers.Layer):
        """PyTorch's ``AdaptiveAvgPool2d(bins)``: ``[B, H, W, C]`` -> ``[B, bins, bins, C]``.

        Bin i of an axis of size n averages rows floor(i n / bins) to
        ceil((i + 1) n / bins) - 1, so bins overlap when they do not divide the
        map (3 and 6 bins on a 32x32 map): pooling along each axis is a product
        with a constant averaging matrix, exact at any size.
        """

        def __init__(self, bins=1, **kwargs):
            super().__init__(**kwargs)
            self.bins = int(bins)

        def _matrix(self, size, dtype):
            if isinstance(size, int):
                return tf.constant(adaptive_pooling_matrix(size, self.bins), dtype)
            index = tf.range(self.bins)
            start = index * size // self.bins
            stop = ((index + 1) * size + self.bins - 1) // self.bins
            positions = tf.range(size)[tf.newaxis]
            inside = (positions >= start[:, tf.newaxis]) & (positions < stop[:, tf.newaxis])
            return tf.cast(inside, dtype) / tf.cast(stop - start, dtype)[:, tf.newaxis]

        def call(self, inputs):
            height, width = _static_or_dynamic_dims(inputs, (1, 2))
            rows = tf.einsum("oh,bhwc->bowc", self._matrix(height, inputs.dtype), inputs)
            return tf.einsum("pw,bowc->bopc", self._matrix(width, inputs.dtype), rows)

        def get_config(self):
            config = super().get_config()
            config.update(bins=self.bins)
            return config

    @register
    class AtrousConv2D(keras.layers.Conv2D):
        """A stride-1 dilated ("atrous") convolution with "same" padding, fast on small maps.

        TensorFlow computes a dilated convolution through space-to-batch, which
        pads the map to a multiple of the rate on both sides: DeepLabv3's rates
        6 and 18 on an 8x8 map cost 20 and 500 times the convolution itself
        (forward and backward, measured). This layer sums the kernel's taps as
        shifted 1x1 products instead, one matrix product over the taps that see
        the map (exact; taps that read padding only are left out). Weights and
        configuration are Conv2D's; conversion to TFLite puts a plain Conv2D in
        its place, which becomes one dilated CONV_2D. A map of unknown size
        takes Conv2D's own path.
        """

        def call(self, inputs):
            height, width = inputs.shape[1:3]
            if height is None or width is None or tuple(self.strides) != (1, 1) or self.padding != "same" \
                    or self.groups != 1:
                return super().call(inputs)
            (kernel_h, kernel_w), (rate_h, rate_w) = self.kernel_size, self.dilation_rate
            pad_h, pad_w = (kernel_h - 1) // 2 * rate_h, (kernel_w - 1) // 2 * rate_w
            padded = tf.pad(inputs, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
            shifted, taps = [], []
            for i in range(kernel_h):
                for j in range(kernel_w):
                    top, left = i * rate_h, j * rate_w
                    if top + height <= pad_h or top >= pad_h + height or left + width <= pad_w \
                            or left >= pad_w + width:
                        continue  # this tap reads padding only, at every output position
                    shifted.append(padded[:, top:top + height, left:left + width])
                    taps.append(self.kernel[i, j])
            kernel = tf.concat(taps, axis=0)[tf.newaxis, tf.newaxis]
            outputs = tf.nn.conv2d(tf.concat(shifted, axis=-1), tf.cast(kernel, inputs.dtype), 1, "VALID")
            if self.use_bias:
                outputs = outputs + tf.cast(self.bias, outputs.dtype)
            return self.activation(outputs) if self.activation is not None else outputs

    @register
    class ResizeTo(keras.layers.Layer):
        """Resizes bilinearly to a fixed ``size`` (height, width): a segmentation model's final upsampling
        when its input size is fixed (``ResizeLike`` on the input otherwise)."""

        def __init__(self, size, align_corners=True, **kwargs):
            super().__init__(**kwargs)
            self.size = tuple(int(s) for s in size)
            self.align_corners = bool(align_corners)

        def call(self, inputs):
            if tuple(inputs.shape[1:3]) == self.size:
                return inputs
            return _resize_bilinear(inputs, list(self.size), self.align_corners)

        def get_config(self):
            config = super().get_config()
            config.update(size=list(self.size), align_corners=self.align_corners)
            return config

    @register
    class UnfoldPatches(keras.layers.Layer):
        """``[B, H, W, C]`` -> ``[B, N, P, C]``: N = (H/p)(W/p) patches of P = p*p pixels.

        A space-to-depth and a reshape: no transpose, nothing above rank 4.
        """

        def __init__(self, patch_size=2, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = int(patch_size)

        def call(self, inputs):
            height, width = inputs.shape[1], inputs.shape[2]
            channels = inputs.shape[-1]
            patches = tf.nn.space_to_depth(inputs, self.patch_size)
            area = self.patch_size * self.patch_size
            if height is not None and width is not None:
                shape = [-1, (height // self.patch_size) * (width // self.patch_size), area, channels]
            else:
                shape = tf.stack([tf.shape(inputs)[0], -1, area, channels])
            return tf.reshape(patches, shape)

        def get_config(self):
            config = super().get_config()
            config.update(patch_size=self.patch_size)
            return config

    @register
    class FoldPatches(keras.layers.Layer):
        """``[B, N, P, C]`` -> ``[B, H, W, C]``, the inverse of ``UnfoldPatches``.

        Takes ``[tokens, feature_map]``: H and W are read from the feature map that was unfolded.
        """

        def __init__(self, patch_size=2, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = int(patch_size)

        def call(self, inputs):
            tokens, feature_map = inputs
            height, width = _static_or_dynamic_dims(feature_map, (1, 2))
            channels = tokens.shape[-1] * self.patch_size * self.patch_size
            if isinstance(height, int) and isinstance(width, int):
                shape = [-1, height // self.patch_size, width // self.patch_size, channels]
            else:
                shape = tf.stack([tf.shape(tokens)[0], height // self.patch_size,
                                  width // self.patch_size, channels])
            return tf.nn.depth_to_space(tf.reshape(tokens, shape), self.patch_size)

        def get_config(self):
            config = super().get_config()
            config.update(patch_size=self.patch_size)
            return config

    @register
    class SeparableAttention(keras.layers.Layer):
        """The token mixing of separable self-attention (MobileViTv2), between its projections.

        Takes ``[query, key, value]``: ``[B, N, P, 1]``, ``[B, N, P, d]`` and
        ``[B, N, P, d]`` with the ReLU already applied to the value (it is fused
        into the value projection). Output ``[B, N, P, d]``: scores = softmax over
        the N patches of the query; context = sum over N of key * scores;
        output = value * context. O(N) in the number of patches, no product
        between tokens.
        """

        def call(self, inputs):
            query, key, value = inputs
            scores = tf.nn.softmax(query, axis=1)
            context = tf.reduce_sum(key * scores, axis=1, keepdims=True)
            return value * context

    @register
    class MultiHeadPatchAttention(keras.layers.Layer):
        """The token mixing of MobileViT v1's multi-head self-attention, between its projections.

        Input ``[B, N, P, 3d]`` (q, k, v, each split into ``num_heads`` heads as the
        official qkv projection lays them out), output ``[B, N, P, d]``: each of
        the P pixel positions attends over the N patches. O(N^2).
        """

        def __init__(self, num_heads=4, **kwargs):
            super().__init__(**kwargs)
            self.num_heads = int(num_heads)

        def call(self, inputs):
            dim = inputs.shape[-1] // 3
            head_dim = dim // self.num_heads
            batch, num_patches, area = _static_or_dynamic_dims(inputs, (0, 1, 2))
            query, key, value = tf.split(inputs, 3, axis=-1)

            def split_heads(t):  # [B, N, P, d] -> [B*P, heads, N, head_dim]
                t = tf.transpose(t, [0, 2, 1, 3])
                t = tf.reshape(t, [-1, num_patches, self.num_heads, head_dim])
                return tf.transpose(t, [0, 2, 1, 3])

            query = split_heads(query) * tf.cast(head_dim ** -0.5, inputs.dtype)
            scores = tf.nn.softmax(tf.matmul(query, split_heads(key), transpose_b=True), axis=-1)
            mixed = tf.matmul(scores, split_heads(value))  # [B*P, heads, N, head_dim]
            mixed = tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [-1, area, num_patches, dim])
            return tf.transpose(mixed, [0, 2, 1, 3])

        def get_config(self):
            config = super().get_config()
            config.update(num_heads=self.num_heads)
            return config

    @register
    class SplitChannels(keras.layers.Layer):
        """Splits the last axis into consecutive parts of ``sizes``: SSDLite's box numbers and class logits."""

        def __init__(self, sizes, **kwargs):
            super().__init__(**kwargs)
            self.sizes = [int(size) for size in sizes]

        def call(self, inputs):
            # Slices, not tf.split: TFLite makes the latter SPLIT_V, which XNNPACK does not take.
            starts = np.cumsum([0] + self.sizes[:-1])
            return [inputs[..., start:start + size] for start, size in zip(starts, self.sizes)]

        def compute_output_shape(self, input_shape):
            return [(*input_shape[:-1], size) for size in self.sizes]

        def get_config(self):
            config = super().get_config()
            config.update(sizes=self.sizes)
            return config

    return types.SimpleNamespace(
        keras=keras,
        Preprocessing=Preprocessing,
        OneGroupNorm=OneGroupNorm,
        ResizeToMultiple=ResizeToMultiple,
        ResizeLike=ResizeLike,
        UnfoldPatches=UnfoldPatches,
        FoldPatches=FoldPatches,
        SeparableAttention=SeparableAttention,
        MultiHeadPatchAttention=MultiHeadPatchAttention,
        AdaptiveAveragePooling=AdaptiveAveragePooling,
        ResizeTo=ResizeTo,
        AtrousConv2D=AtrousConv2D,
        SplitChannels=SplitChannels,
    )


_keras3 = layers_for("keras")
Preprocessing = _keras3.Preprocessing
OneGroupNorm = _keras3.OneGroupNorm
ResizeToMultiple = _keras3.ResizeToMultiple
ResizeLike = _keras3.ResizeLike
UnfoldPatches = _keras3.UnfoldPatches
FoldPatches = _keras3.FoldPatches
SeparableAttention = _keras3.SeparableAttention
MultiHeadPatchAttention = _keras3.MultiHeadPatchAttention
AdaptiveAveragePooling = _keras3.AdaptiveAveragePooling
ResizeTo = _keras3.ResizeTo
AtrousConv2D = _keras3.AtrousConv2D
SplitChannels = _keras3.SplitChannels


# ---------------------------------------------------------------------------
# Blocks: functions that add named Keras layers to a functional graph.
# ---------------------------------------------------------------------------

def _layers_of(x):
    return layers_for(backend.keras_module_name(x))


def _conv_initializer(keras, fan_out=None, filters=None):
    """The official code's Kaiming normal (fan-out) initialiser for every convolution.

    A convolution that computes ``filters`` of a projection with ``fan_out``
    outputs (the split qkv projection) gets that projection's variance, 2 / fan_out.
    """
    scale = 2.0 if fan_out is None else 2.0 * filters / fan_out
    return keras.initializers.VarianceScaling(scale=scale, mode="fan_out", distribution="untruncated_normal")


# XNNPACK's CONCATENATION takes at most five inputs (LiteRT 2.3); one with more stays with TFLite's kernels,
# splitting the graph into partitions. Groups of four, as the row-strip rewrite has always cut them.
CONCATENATION_INPUTS = 4


def concatenate_in_groups(tensors, axis, name=None):
    """``tensors`` concatenated along ``axis`` by concatenations of at most ``CONCATENATION_INPUTS`` inputs each
    (the same values as one concatenation); named ``name``, its first steps ``{name}_0``, ``{name}_1``, ...."""
    keras = _layers_of(tensors[0]).keras
    step = 0
    while len(tensors) > CONCATENATION_INPUTS:
        groups = [tensors[i:i + CONCATENATION_INPUTS] for i in range(0, len(tensors), CONCATENATION_INPUTS)]
        tensors = []
        for group in groups:
            tensors.append(group[0] if len(group) == 1 else keras.layers.Concatenate(
                axis=axis, name=None if name is None else f"{name}_{step}")(group))
            step += len(group) > 1
    return keras.layers.Concatenate(axis=axis, name=name)(tensors) if len(tensors) > 1 else tensors[0]


def conv_norm_act(x, filters, kernel_size=1, strides=1, depthwise=False, use_norm=True,
                  activation="swish", use_bias=None, dilation_rate=1, name="conv"):
    """Convolution (+ BatchNorm) (+ SiLU) with PyTorch's symmetric padding.

    Layers are named ``{name}_conv``, ``{name}_bn``, ``{name}_act`` (and
    ``{name}_pad`` when a strided convolution needs explicit padding). A dilated
    convolution has stride 1 here, where Keras' "same" is PyTorch's padding of
    ``(k - 1) // 2 * dilation_rate`` on each side.
    """
    if dilation_rate > 1 and strides > 1:
        raise ValueError(f"{name}: a convolution is either strided or dilated, not both")
    layers = _layers_of(x)
    keras = layers.keras
    if use_bias is None:
        use_bias = not use_norm
    padding = "same"
    if kernel_size > 1 and strides > 1:
        # Keras' "same" pads a strided convolution asymmetrically; PyTorch pads (k-1)/2 on each side.
        x = keras.layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        x = keras.layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding=padding, use_bias=use_bias, dilation_rate=dilation_rate,
            depthwise_initializer=_conv_initializer(keras), name=f"{name}_conv")(x)
    else:
        convolution = layers.AtrousConv2D if dilation_rate > 1 else keras.layers.Conv2D
        x = convolution(
            filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, dilation_rate=dilation_rate,
            kernel_initializer=_conv_initializer(keras), name=f"{name}_conv")(x)
    if use_norm:
        x = keras.layers.BatchNormalization(
            epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    return x


def make_divisible(value, divisor=8, min_value=None):
    """Rounds ``value`` to a multiple of ``divisor``, never below 90% of it (cvnets' rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


def inverted_residual(x, filters, strides=1, expansion=2.0, dilation=1, name="inverted_residual"):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise (dilated in dense-prediction backbones), 1x1 project;
    residual when shapes allow."""
    keras = _layers_of(x).keras
    in_channels = x.shape[-1]
    hidden = make_divisible(int(round(in_channels * expansion)), 8)
    shortcut = x
    if expansion != 1:
        x = conv_norm_act(x, hidden, 1, name=f"{name}_expand")
    x = conv_norm_act(x, hidden, 3, strides=strides, depthwise=True, dilation_rate=dilation, name=f"{name}_depthwise")
    x = conv_norm_act(x, filters, 1, activation=None, name=f"{name}_project")
    if strides == 1 and in_channels == filters:
        x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def _pointwise(x, filters, use_bias=True, activation=None, fan_out=None, name="pointwise"):
    """A 1x1 convolution over tokens ``[B, N, P, C]``: a linear layer per token."""
    keras = _layers_of(x).keras
    return keras.layers.Conv2D(
        filters, 1, use_bias=use_bias, activation=activation,
        kernel_initializer=_conv_initializer(keras, fan_out, filters), name=name)(x)


def separable_self_attention(x, name="attn"):
    """MobileViTv2's separable self-attention on tokens ``[B, N, P, d]``.

    The official qkv projection (d -> 1 + 2d, split into 1, d, d) is three 1x1
    convolutions here, ``{name}_query`` (d -> 1), ``{name}_key`` and
    ``{name}_value`` (d -> d, ReLU fused), so that no converter has to split an
    odd-sized tensor and the ReLU runs inside the convolution (TFLite and
    XNNPACK, float and int8); then ``SeparableAttention`` and the output
    projection ``{name}_out`` (d -> d). The importer splits the checkpoints' qkv
    weights in the same order.
    """
    layers = _layers_of(x)
    dim = x.shape[-1]
    qkv_channels = 1 + 2 * dim
    query = _pointwise(x, 1, fan_out=qkv_channels, name=f"{name}_query")
    key = _pointwise(x, dim, fan_out=qkv_channels, name=f"{name}_key")
    value = _pointwise(x, dim, activation="relu", fan_out=qkv_channels, name=f"{name}_value")
    mixed = layers.SeparableAttention(name=f"{name}_mix")([query, key, value])
    return _pointwise(mixed, dim, name=f"{name}_out")


def multi_head_self_attention(x, num_heads=4, name="attn"):
    """MobileViT v1's multi-head self-attention on tokens ``[B, N, P, d]``."""
    layers = _layers_of(x)
    dim = x.shape[-1]
    qkv = _pointwise(x, 3 * dim, name=f"{name}_qkv")
    mixed = layers.MultiHeadPatchAttention(num_heads, name=f"{name}_mix")(qkv)
    return _pointwise(mixed, dim, name=f"{name}_out")


def _feed_forward(x, hidden, name):
    keras = _layers_of(x).keras
    dim = x.shape[-1]
    y = _pointwise(x, hidden, name=f"{name}_fc1")
    y = keras.layers.Activation("swish", name=f"{name}_act")(y)
    return _pointwise(y, dim, name=f"{name}_fc2")


def _transformer_layer(x, ffn_dim, norm, attention, name):
    """Pre-norm attention + residual, then pre-norm feed-forward + residual."""
    keras = _layers_of(x).keras
    y = norm(name=f"{name}_attn_norm")(x)
    y = attention(y, name=f"{name}_attn")
    x = keras.layers.Add(name=f"{name}_attn_add")([x, y])
    y = norm(name=f"{name}_ffn_norm")(x)
    y = _feed_forward(y, ffn_dim, name=f"{name}_ffn")
    return keras.layers.Add(name=f"{name}_ffn_add")([x, y])


def linear_transformer_layer(x, ffn_dim, name="transformer"):
    """MobileViTv2's transformer layer: one-group norms and separable self-attention."""
    layers = _layers_of(x)
    return _transformer_layer(x, ffn_dim, layers.OneGroupNorm, separable_self_attention, name)


def mobilevit_transformer_layer(x, ffn_dim, num_heads=4, name="transformer"):
    """MobileViT v1's transformer layer: per-token LayerNorm and multi-head self-attention."""
    keras = _layers_of(x).keras

    def norm(name):
        return keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name=name)

    def attention(y, name):
        return multi_head_self_attention(y, num_heads, name=name)

    return _transformer_layer(x, ffn_dim, norm, attention, name)


def mobilevitv2_block(x, attention_dim, num_layers, ffn_dim=None, patch_size=2, dilation=1,
                      name="mobilevitv2_block"):
    """MobileViTv2 block: local depthwise + 1x1 conv, separable-attention transformer over
    unfolded patches, fold, 1x1 projection back to the input channels. No skip around it.

    ``dilation`` dilates the local depthwise convolution only, as the official
    dense-prediction backbones do; the patches stay 2x2.
    """
    layers = _layers_of(x)
    channels = x.shape[-1]
    ffn_dim = ffn_dim or int(2 * attention_dim // 16 * 16)
    x = layers.ResizeToMultiple(patch_size, align_corners=True, name=f"{name}_resize")(x)
    x = conv_norm_act(x, channels, 3, depthwise=True, dilation_rate=dilation, name=f"{name}_local_dw")
    local = _pointwise(x, attention_dim, use_bias=False, name=f"{name}_local_pw_conv")
    tokens = layers.UnfoldPatches(patch_size, name=f"{name}_unfold")(local)
    for index in range(num_layers):
        tokens = linear_transformer_layer(tokens, ffn_dim, name=f"{name}_transformer{index}")
    tokens = layers.OneGroupNorm(name=f"{name}_norm")(tokens)
    x = layers.FoldPatches(patch_size, name=f"{name}_fold")([tokens, local])
    return conv_norm_act(x, channels, 1, activation=None, name=f"{name}_proj")


def mobilevit_block(x, attention_dim, num_layers, ffn_dim, num_heads=4, patch_size=2, name="mobilevit_block"):
    """MobileViT (v1) block: local 3x3 + 1x1 conv, multi-head-attention transformer over
    unfolded patches, fold, 1x1 projection, and a 3x3 fusion conv over [input, output].
    """
    layers = _layers_of(x)
    keras = layers.keras
    shortcut = x
    channels = x.shape[-1]
    x = conv_norm_act(x, channels, 3, name=f"{name}_local")
    local = _pointwise(x, attention_dim, use_bias=False, name=f"{name}_local_pw_conv")
    # v1 resizes after the local convolutions, half-pixel, and resizes back after folding.
    resized = layers.ResizeToMultiple(patch_size, align_corners=False, name=f"{name}_resize")(local)
    tokens = layers.UnfoldPatches(patch_size, name=f"{name}_unfold")(resized)
    for index in range(num_layers):
        tokens = mobilevit_transformer_layer(tokens, ffn_dim, num_heads, name=f"{name}_transformer{index}")
    tokens = keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name=f"{name}_norm")(tokens)
    x = layers.FoldPatches(patch_size, name=f"{name}_fold")([tokens, resized])
    x = layers.ResizeLike(align_corners=False, name=f"{name}_resize_back")([x, local])
    x = conv_norm_act(x, channels, 1, name=f"{name}_proj")
    x = keras.layers.Concatenate(name=f"{name}_concat")([shortcut, x])
    return conv_norm_act(x, channels, 3, name=f"{name}_fusion")
