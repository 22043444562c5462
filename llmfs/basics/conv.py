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

import numbers

import numpy as np


def _check(x_shape, kh, kw, stride: int, pad: int, x_name: str = "x") -> tuple[int, int]:
    """(OH, OW) of a (kh, kw) window moving by ``stride`` over the padded (N, C, H, W) ``x_shape``, or a
    TypeError / ValueError saying which argument is wrong and what was expected."""
    for name, value, low in (("kh", kh, 1), ("kw", kw, 1), ("stride", stride, 1), ("pad", pad, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(x_shape, tuple) and len(x_shape) == 4
            and all(isinstance(n, numbers.Integral) and n >= 1 for n in x_shape)):
        raise ValueError(f"{x_name} must be 4-D (N, C, H, W) with every size >= 1, got shape {x_shape!r}")
    H, W = x_shape[2:]
    if kh > H + 2 * pad or kw > W + 2 * pad:
        raise ValueError(f"the {kh}x{kw} kernel is bigger than the padded {x_name}: {H}x{W} with pad={pad}")
    return (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1


def out_size(n: int, k: int, stride: int = 1, pad: int = 0) -> int:
    """Output length along one axis: floor((n + 2*pad - k) / stride) + 1."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return _check((1, 1, n, 1), k, 1, stride, pad, x_name="input")[0]


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, pad: int = 0, pad_value: float = 0.0) -> np.ndarray:
    """Every (kh, kw) window of x as a row. x (N, C, H, W) -> cols (N*OH*OW, C*kh*kw).

    Row ``(n, i, j)`` holds the window whose top-left corner is at ``(i*stride, j*stride)`` of the
    padded input, flattened in the order (C, kh, kw), the order of a PyTorch weight's last 3 axes.
    """
    if not isinstance(x, np.ndarray) or x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"x must be a NumPy array of numbers, got {getattr(x, 'dtype', type(x).__name__)}")
    OH, OW = _check(x.shape, kh, kw, stride, pad)
    N, C, H, W = x.shape
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
    OH, OW = _check(tuple(x_shape) if isinstance(x_shape, (tuple, list)) else x_shape, kh, kw, stride, pad, "x_shape")
    N, C, H, W = x_shape
    if not isinstance(cols, np.ndarray) or cols.shape != (N * OH * OW, C * kh * kw) or not np.issubdtype(cols.dtype, np.number):
        raise ValueError(f"cols must be a ({N * OH * OW}, {C * kh * kw}) array of numbers (im2col's shape for x_shape "
                         f"{tuple(x_shape)}), got {getattr(cols, 'shape', type(cols).__name__)}")
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
    shapes = " and ".join(f"{n} {a.dtype} {a.shape}" if isinstance(a, np.ndarray) else f"{n} {type(a).__name__}"
                          for n, a in (("x", x), ("w", w)))
    if not (isinstance(x, np.ndarray) and isinstance(w, np.ndarray) and x.ndim == 4 and w.ndim == 4
            and x.shape[1] == w.shape[1] and w.size
            and all(a.dtype != np.bool_ and np.issubdtype(a.dtype, np.number) for a in (x, w))):
        raise ValueError(f"need x (N, C, H, W) and w (F, C, kh, kw), number arrays with the same C, got {shapes}")
    N, _, H, W = x.shape
    F, _, kh, kw = w.shape
    if b is not None and (not isinstance(b, np.ndarray) or b.shape != (F,) or not np.issubdtype(b.dtype, np.number)):
        raise ValueError(f"b must be None or a ({F},) array, one bias per filter, got {getattr(b, 'shape', type(b).__name__)}")
    cols = im2col(x, kh, kw, stride, pad)  # (N*OH*OW, C*kh*kw)
    out = cols @ w.reshape(F, -1).T  # (N*OH*OW, F)
    if b is not None:
        out = out + b
    OH, OW = _check(x.shape, kh, kw, stride, pad)
    out = out.reshape(N, OH, OW, F).transpose(0, 3, 1, 2)
    return out, (x.shape, cols, w, stride, pad)


def conv2d_backward(dout: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the loss w.r.t. x, w and b, given dout = dL/dout (N, F, OH, OW).

    With out2 = cols @ W2.T + b:  dW2 = dout2.T @ cols,  db = sum(dout2),  dcols = dout2 @ W2,
    and dx = col2im(dcols).
    """
    if not (isinstance(cache, tuple) and len(cache) == 5 and isinstance(cache[2], np.ndarray) and cache[2].ndim == 4):
        raise TypeError("cache must be the second value returned by conv2d_forward")
    x_shape, cols, w, stride, pad = cache
    F, _, kh, kw = w.shape
    out_shape = (x_shape[0], F, *_check(x_shape, kh, kw, stride, pad))
    if not isinstance(dout, np.ndarray) or dout.shape != out_shape or not np.issubdtype(dout.dtype, np.number):
        raise ValueError(f"dout must be an array shaped like the forward's output, {out_shape}, "
                         f"got {getattr(dout, 'shape', type(dout).__name__)}")
    dout2 = dout.transpose(0, 2, 3, 1).reshape(-1, F)  # (N*OH*OW, F)
    dw = (dout2.T @ cols).reshape(w.shape)
    db = dout2.sum(axis=0)
    dx = col2im(dout2 @ w.reshape(F, -1), x_shape, kh, kw, stride, pad)
    return dx, dw, db


def maxpool2d_forward(x: np.ndarray, k: int, stride: int | None = None, pad: int = 0):
    """The maximum of every (k, k) window, channel by channel (padding counts as -inf).

    x (N, C, H, W) -> out (N, C, OH, OW), cache for the backward. ``stride`` defaults to ``k``;
    ``pad`` is at most k // 2, as in PyTorch (a wider pad only adds windows of padding).
    """
    stride = k if stride is None else stride
    if not isinstance(x, np.ndarray) or x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"x must be a NumPy array of numbers, got {getattr(x, 'dtype', type(x).__name__)}")
    OH, OW = _check(x.shape, k, k, stride, pad)
    if pad > k // 2:
        raise ValueError(f"pad must be at most k // 2 = {k // 2} (as in PyTorch), got pad={pad}")
    N, C, H, W = x.shape
    cols = im2col(x.reshape(N * C, 1, H, W), k, k, stride, pad, pad_value=-np.inf)  # (N*C*OH*OW, k*k)
    arg = cols.argmax(axis=1)
    out = cols[np.arange(len(cols)), arg]
    return out.reshape(N, C, OH, OW), (x.shape, cols.shape, arg, k, stride, pad)


def maxpool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Each window's gradient goes to the one input that was its maximum; the rest get zero."""
    if not (isinstance(cache, tuple) and len(cache) == 6 and isinstance(cache[2], np.ndarray)):
        raise TypeError("cache must be the second value returned by maxpool2d_forward")
    x_shape, cols_shape, arg, k, stride, pad = cache
    N, C, H, W = x_shape
    out_shape = (N, C, *_check(x_shape, k, k, stride, pad))
    if not isinstance(dout, np.ndarray) or dout.shape != out_shape or not np.issubdtype(dout.dtype, np.number):
        raise ValueError(f"dout must be an array shaped like the forward's output, {out_shape}, "
                         f"got {getattr(dout, 'shape', type(dout).__name__)}")
    dcols = np.zeros(cols_shape, dtype=dout.dtype)
    dcols[np.arange(len(arg)), arg] = dout.reshape(-1)
    return col2im(dcols, (N * C, 1, H, W), k, k, stride, pad).reshape(x_shape)
