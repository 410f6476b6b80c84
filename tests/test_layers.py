"""Layers against plain NumPy formulas of the official code."""

import numpy as np
import pytest

import keras
from keras_mobilevitv2 import layers

from numpy_reference import numpy_resize_bilinear


def _apply(layer, *inputs):
    return np.asarray(layer(*inputs))


def numpy_unfold(x, p=2):
    """The official unfold: [B, H, W, C] -> patches [B, P, N, C], P = (row in patch, col in patch)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // p, p, w // p, p, c)  # b, nh, ph, nw, pw, c
    return x.transpose(0, 2, 4, 1, 3, 5).reshape(b, p * p, (h // p) * (w // p), c)


def test_unfold_matches_official_patch_order_and_fold_inverts_it(rng):
    x = rng.normal(size=(2, 6, 8, 5)).astype(np.float32)
    tokens = _apply(layers.UnfoldPatches(2), x)
    assert tokens.shape == (2, 12, 4, 5)  # [B, N, P, C]
    np.testing.assert_array_equal(tokens.transpose(0, 2, 1, 3), numpy_unfold(x))
    folded = _apply(layers.FoldPatches(2), [tokens, x])
    np.testing.assert_array_equal(folded, x)


def test_unfold_and_fold_with_dynamic_shapes(rng):
    inputs = keras.Input((None, None, 3))
    tokens = layers.UnfoldPatches(2)(inputs)
    outputs = layers.FoldPatches(2)([tokens, inputs])
    model = keras.Model(inputs, [tokens, outputs])
    x = rng.normal(size=(1, 4, 10, 3)).astype(np.float32)
    got_tokens, got = model(x)
    assert tuple(got_tokens.shape) == (1, 10, 4, 3)
    np.testing.assert_array_equal(np.asarray(got), x)


def test_separable_self_attention_matches_numpy_formula(rng):
    n, p, d = 16, 4, 8
    inputs = keras.Input((n, p, d))
    model = keras.Model(inputs, layers.separable_self_attention(inputs, name="attn"))
    for weight in model.weights:
        weight.assign(rng.normal(size=weight.shape).astype(np.float32) * 0.3)
    x = rng.normal(size=(2, n, p, d)).astype(np.float32)

    def project(name):
        kernel, bias = (np.asarray(w) for w in model.get_layer(name).weights)
        return x @ kernel[0, 0] + bias

    q, k, v = project("attn_query"), project("attn_key"), project("attn_value")
    w_out, b_out = (np.asarray(w) for w in model.get_layer("attn_out").weights)
    scores = np.exp(q - q.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)  # softmax over the N patches, per pixel position
    context = (k * scores).sum(axis=1, keepdims=True)
    expected = (np.maximum(v, 0) * context) @ w_out[0, 0] + b_out

    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5, atol=1e-5)


def test_multi_head_patch_attention_matches_numpy(rng):
    n, p, d, heads = 9, 4, 12, 4
    qkv = rng.normal(size=(2, n, p, 3 * d)).astype(np.float32)
    got = _apply(layers.MultiHeadPatchAttention(heads), qkv)

    head_dim = d // heads
    expected = np.zeros((2, n, p, d), np.float32)
    for b in range(2):
        for pos in range(p):
            tokens = qkv[b, :, pos]  # [N, 3d], laid out (3, heads, head_dim) as the official qkv
            q, k, v = (tokens[:, i * d:(i + 1) * d].reshape(n, heads, head_dim) for i in range(3))
            for h in range(heads):
                logits = (q[:, h] * head_dim ** -0.5) @ k[:, h].T
                weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
                weights /= weights.sum(axis=-1, keepdims=True)
                expected[b, :, pos, h * head_dim:(h + 1) * head_dim] = weights @ v[:, h]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_one_group_norm_normalises_over_the_whole_sample(rng):
    x = rng.normal(3.0, 2.0, size=(2, 5, 4, 6)).astype(np.float32)
    layer = layers.OneGroupNorm()
    layer.build(x.shape)
    gamma = rng.normal(size=6).astype(np.float32)
    beta = rng.normal(size=6).astype(np.float32)
    layer.set_weights([gamma, beta])
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(_apply(layer, x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("align_corners", [True, False])
def test_odd_feature_maps_are_resized_like_the_official_code(rng, align_corners):
    x = rng.normal(size=(2, 7, 5, 3)).astype(np.float32)
    got = _apply(layers.ResizeToMultiple(2, align_corners=align_corners), x)
    assert got.shape == (2, 8, 6, 3)
    expected = numpy_resize_bilinear(x.astype(np.float64), 8, 6, align_corners)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    back = _apply(layers.ResizeLike(align_corners=align_corners), [got, x])
    np.testing.assert_allclose(back, numpy_resize_bilinear(got.astype(np.float64), 7, 5, align_corners),
                               rtol=1e-5, atol=1e-5)


def test_even_feature_maps_are_not_resized(rng):
    x = rng.normal(size=(1, 8, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(_apply(layers.ResizeToMultiple(2), x), x)


def test_make_divisible_follows_cvnets():
    assert layers.make_divisible(32 * 0.75) == 24
    assert layers.make_divisible(64 * 0.5, 16) == 32
    assert layers.make_divisible(10, 8) == 16  # never below 90% of the value
    assert layers.make_divisible(3, 8) == 8


@pytest.mark.parametrize("layer", [
    layers.Preprocessing(rescale=1.0, input_size=(224, 320), crop_fraction=0.9, class_names=["a", "b"],
                         architecture="mobilevitv2_050"),
    layers.OneGroupNorm(epsilon=1e-6),
    layers.ResizeToMultiple(4, align_corners=False),
    layers.ResizeLike(align_corners=True),
    layers.UnfoldPatches(4),
    layers.FoldPatches(4),
    layers.SeparableAttention(),
    layers.MultiHeadPatchAttention(num_heads=2),
])
def test_layers_serialise(layer):
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
