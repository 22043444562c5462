"""Convolution and max pooling in NumPy, forward and backward, through im2col (built in notebook 06).

im2col copies every receptive field of the input into one row of a matrix, so that a convolution
becomes a single matrix multiply; col2im is its adjoint (it adds each row back where it came from),
which is exactly what the backward pass needs.

    out, cache = conv2d_forward(x, w, b, stride=1, pad=1)   # x (N, C, H, W), w (F, C, kh, kw)
    dx, dw, db = conv2d_backward(dout, cache)                # dout (N, F, OH, OW)
    out, cache = maxpool2d_forward(x, k=2, stride=2)
    dx = maxpool2d_backward(dout, cache)

Layouts follow PyTorch (``F.conv2d``, ``F.max_pool2d``): channels first, weights (out, in, kh, kw).
"""

from __future__ import annotations

import numpy as np


def out_size(n: int, k: int, stride: int = 1, pad: int = 0) -> int:
    """Output length along one axis: floor((n + 2*pad - k) / stride) + 1."""
    return (n + 2 * pad - k) // stride + 1


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, pad: int = 0, pad_value: float = 0.0) -> np.ndarray:
    """Every (kh, kw) window of x as a row. x (N, C, H, W) -> cols (N*OH*OW, C*kh*kw).

    Row ``(n, i, j)`` holds the window whose top-left corner is at ``(i*stride, j*stride)`` of the
    padded input, flattened in the order (C, kh, kw), the order of a PyTorch weight's last 3 axes.
    """
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=pad_value)
    cols = np.empty((N, C, kh, kw, OH, OW), dtype=x.dtype)
    for i in range(kh):  # one strided slice per kernel offset: kh*kw copies, no loop over pixels
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * kh * kw)


def col2im(cols: np.ndarray, x_shape: tuple[int, ...], kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The adjoint of im2col: add every row back into the window it was copied from.

    cols (N*OH*OW, C*kh*kw) -> (N, C, H, W). Pixels shared by overlapping windows receive the sum.
    """
    N, C, H, W = x_shape
    OH, OW = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    cols = cols.reshape(N, OH, OW, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride] += cols[:, :, i, j]
    return xp[:, :, pad : pad + H, pad : pad + W]


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1, pad: int = 0):
    """out[n, f] = sum_c x[n, c] (cross-correlated with) w[f, c] + b[f].

    x (N, C, H, W), w (F, C, kh, kw), b (F,) or None -> out (N, F, OH, OW), cache for the backward.
    """
    N, _, H, W = x.shape
    F, _, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride, pad)  # (N*OH*OW, C*kh*kw)
    out = cols @ w.reshape(F, -1).T  # (N*OH*OW, F)
    if b is not None:
        out = out + b
    OH, OW = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    out = out.reshape(N, OH, OW, F).transpose(0, 3, 1, 2)
    return out, (x.shape, cols, w, stride, pad)


def conv2d_backward(dout: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the loss w.r.t. x, w and b, given dout = dL/dout (N, F, OH, OW).

    With out2 = cols @ W2.T + b:  dW2 = dout2.T @ cols,  db = sum(dout2),  dcols = dout2 @ W2,
    and dx = col2im(dcols).
    """
    x_shape, cols, w, stride, pad = cache
    F, _, kh, kw = w.shape
    dout2 = dout.transpose(0, 2, 3, 1).reshape(-1, F)  # (N*OH*OW, F)
    dw = (dout2.T @ cols).reshape(w.shape)
    db = dout2.sum(axis=0)
    dx = col2im(dout2 @ w.reshape(F, -1), x_shape, kh, kw, stride, pad)
    return dx, dw, db


def maxpool2d_forward(x: np.ndarray, k: int, stride: int | None = None, pad: int = 0):
    """The maximum of every (k, k) window, channel by channel (padding counts as -inf).

    x (N, C, H, W) -> out (N, C, OH, OW), cache for the backward. ``stride`` defaults to ``k``.
    """
    stride = k if stride is None else stride
    N, C, H, W = x.shape
    cols = im2col(x.reshape(N * C, 1, H, W), k, k, stride, pad, pad_value=-np.inf)  # (N*C*OH*OW, k*k)
    arg = cols.argmax(axis=1)
    out = cols[np.arange(len(cols)), arg]
    OH, OW = out_size(H, k, stride, pad), out_size(W, k, stride, pad)
    return out.reshape(N, C, OH, OW), (x.shape, cols.shape, arg, k, stride, pad)


def maxpool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Each window's gradient goes to the one input that was its maximum; the rest get zero."""
    x_shape, cols_shape, arg, k, stride, pad = cache
    N, C, H, W = x_shape
    dcols = np.zeros(cols_shape, dtype=dout.dtype)
    dcols[np.arange(len(arg)), arg] = dout.reshape(-1)
    return col2im(dcols, (N * C, 1, H, W), k, k, stride, pad).reshape(x_shape)
