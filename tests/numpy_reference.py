"""The official code's operations written out in NumPy (float64, NHWC), for tests of layers and heads."""

import math

import numpy as np


def numpy_resize_bilinear(x, out_h, out_w, align_corners):
    """PyTorch's F.interpolate(mode="bilinear") on NHWC, written out."""
    _, in_h, in_w, _ = x.shape

    def source(out_size, in_size):
        i = np.arange(out_size, dtype=np.float64)
        if align_corners:
            s = i * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(i)
        else:
            s = np.maximum((i + 0.5) * in_size / out_size - 0.5, 0)
        lo = np.minimum(np.floor(s).astype(int), in_size - 1)
        hi = np.minimum(lo + 1, in_size - 1)
        return lo, hi, s - lo

    y0, y1, fy = source(out_h, in_h)
    x0, x1, fx = source(out_w, in_w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


def numpy_adaptive_average_pool(x, bins):
    """PyTorch's AdaptiveAvgPool2d((bins, bins)): bin i spans [floor(i n / bins), ceil((i + 1) n / bins))."""
    _, height, width, _ = x.shape

    def edges(size, i):
        return math.floor(i * size / bins), math.ceil((i + 1) * size / bins)

    out = np.zeros((x.shape[0], bins, bins, x.shape[3]))
    for i in range(bins):
        top, bottom = edges(height, i)
        for j in range(bins):
            left, right = edges(width, j)
            out[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
    return out


def numpy_conv2d(x, kernel, bias=None, dilation=1):
    """A stride-1 convolution with PyTorch's symmetric padding ((k - 1) / 2 * dilation), kernel [kh, kw, in, out]."""
    kh, kw = kernel.shape[:2]
    pad_h, pad_w = (kh - 1) // 2 * dilation, (kw - 1) // 2 * dilation
    padded = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros((*x.shape[:3], kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            window = padded[:, i * dilation:i * dilation + height, j * dilation:j * dilation + width]
            out += window @ kernel[i, j]
    return out if bias is None else out + bias


def numpy_batch_norm(x, gamma, beta, mean, variance, epsilon=1e-5):
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def relu(x):
    return np.maximum(x, 0)
