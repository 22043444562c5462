"""The NumPy im2col convolution and max pooling equal PyTorch's, forward and backward."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmfs.basics import conv as nc

CONFIGS = [  # (N, C, H, W, F, k, stride, pad)
    (1, 1, 5, 5, 1, 3, 1, 0),
    (2, 3, 8, 7, 4, 3, 2, 1),
    (3, 2, 9, 11, 5, 2, 3, 2),
    (2, 4, 6, 6, 3, 5, 1, 2),
    (1, 3, 7, 10, 2, 1, 2, 0),
]


def _torch_conv(x, w, b, stride, pad):
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    return xt, wt, bt, out


@pytest.mark.parametrize("N,C,H,W,Fo,k,stride,pad", CONFIGS)
def test_conv2d_forward_and_backward_equal_torch(N, C, H, W, Fo, k, stride, pad):
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(N, C, H, W)), rng.normal(size=(Fo, C, k, k)), rng.normal(size=Fo)
    out, cache = nc.conv2d_forward(x, w, b, stride, pad)
    xt, wt, bt, ref = _torch_conv(x, w, b, stride, pad)
    assert out.shape == ref.shape == (N, Fo, nc.out_size(H, k, stride, pad), nc.out_size(W, k, stride, pad))
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-10)
    dout = rng.normal(size=out.shape)
    dx, dw, db = nc.conv2d_backward(dout, cache)
    ref.backward(torch.tensor(dout))
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), atol=1e-10)


def test_conv2d_without_bias():
    x, w = np.ones((1, 1, 3, 3)), np.ones((2, 1, 2, 2))
    out, _ = nc.conv2d_forward(x, w, None)
    assert out.shape == (1, 2, 2, 2) and np.all(out == 4.0)


def test_conv2d_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(1, 2, 5, 5)), rng.normal(size=(2, 2, 3, 3)), rng.normal(size=2)
    dout = rng.normal(size=(1, 2, 3, 3))

    def loss(x_):
        return float((nc.conv2d_forward(x_, w, b, stride=2, pad=1)[0] * dout).sum())

    dx = nc.conv2d_backward(dout, nc.conv2d_forward(x, w, b, stride=2, pad=1)[1])[0]
    eps, idx = 1e-6, (0, 1, 2, 3)
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    assert abs((loss(xp) - loss(xm)) / (2 * eps) - dx[idx]) < 1e-6


def test_im2col_small_example_and_col2im_is_its_adjoint():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    cols = nc.im2col(x, 2, 2, stride=2)
    assert cols.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(2 * 4 * 3, 3 * 3 * 3))
    # <im2col(x), y> == <x, col2im(y)> for overlapping, padded windows
    lhs = (nc.im2col(x, 3, 3, stride=2, pad=1) * y).sum()
    rhs = (x * nc.col2im(y, x.shape, 3, 3, stride=2, pad=1)).sum()
    assert abs(lhs - rhs) < 1e-9


@pytest.mark.parametrize("N,C,H,W,k,stride,pad", [
    (2, 3, 8, 8, 2, 2, 0), (1, 2, 7, 9, 3, 2, 1), (2, 1, 6, 5, 3, 1, 1), (1, 4, 10, 10, 4, 3, 2),
])
def test_maxpool2d_forward_and_backward_equal_torch(N, C, H, W, k, stride, pad):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, C, H, W))
    out, cache = nc.maxpool2d_forward(x, k, stride, pad)
    xt = torch.tensor(x, requires_grad=True)
    ref = F.max_pool2d(xt, k, stride, pad)
    np.testing.assert_array_equal(out, ref.detach().numpy())
    dout = rng.normal(size=out.shape)
    ref.backward(torch.tensor(dout))
    np.testing.assert_allclose(nc.maxpool2d_backward(dout, cache), xt.grad.numpy(), atol=1e-12)


def test_maxpool_default_stride_is_kernel_size():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, _ = nc.maxpool2d_forward(x, 2)
    assert out.reshape(-1).tolist() == [5, 7, 13, 15]
