"""The NumPy MLP's forward, backward and optimiser equal PyTorch's; training learns."""

import numpy as np
import pytest
import torch

from llmfs.basics import mlp_numpy as mlp


def _small_problem(dtype=np.float64, sizes=(6, 5, 4, 3), batch=7, seed=0):
    rng = np.random.default_rng(seed)
    params = mlp.init_params(list(sizes), rng, dtype=dtype)
    params = [(W, rng.standard_normal(b.shape).astype(dtype) * 0.1) for W, b in params]  # non-zero biases
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=batch)
    return params, x, y


def _torch_leaves(params):
    return [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in params]


def _torch_loss(tparams, x, y):
    """The same MLP in torch, on leaf tensors [(W, b), ...]: the mean cross-entropy."""
    h = torch.tensor(x)
    for i, (W, b) in enumerate(tparams):
        h = h @ W + b
        if i < len(tparams) - 1:
            h = torch.relu(h)
    return torch.nn.functional.cross_entropy(h, torch.tensor(y))


def test_he_init_statistics():
    params = mlp.init_params([784, 512, 10], np.random.default_rng(0))
    (W1, b1), (W2, b2) = params
    assert W1.shape == (784, 512) and b1.shape == (512,) and W2.shape == (512, 10)
    assert W1.dtype == np.float32 and not b1.any()
    assert abs(W1.std() - np.sqrt(2 / 784)) < 0.02 * np.sqrt(2 / 784)
    assert abs(mlp.init_params([100, 50], np.random.default_rng(0), scheme=0.01)[0][0].std() - 0.01) < 1e-3


def test_forward_shapes_and_cache():
    params, x, _ = _small_problem()
    logits, cache = mlp.forward(params, x)
    assert logits.shape == (7, 3)
    assert [c.shape for c in cache] == [(7, 6), (7, 5), (7, 4)]
    assert (cache[1] >= 0).all() and (cache[2] >= 0).all()  # hidden activations went through ReLU


def test_loss_and_gradients_equal_torch_autograd():
    params, x, y = _small_problem()
    loss, grads = mlp.loss_and_grads(params, x, y)
    tparams = _torch_leaves(params)
    tloss = _torch_loss(tparams, x, y)
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-12
    for (dW, db), (W, b) in zip(grads, tparams):
        assert np.abs(dW - W.grad.numpy()).max() < 1e-12
        assert np.abs(db - b.grad.numpy()).max() < 1e-12


def test_gradients_match_finite_differences():
    params, x, y = _small_problem(seed=3)
    _, grads = mlp.loss_and_grads(params, x, y)
    eps = 1e-6
    for (W, b), (dW, db) in zip(params, grads):
        for p, g in ((W, dW), (b, db)):
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + eps
                up = mlp.loss_and_grads(params, x, y)[0]
                p[idx] = old - eps
                down = mlp.loss_and_grads(params, x, y)[0]
                p[idx] = old
                assert abs((up - down) / (2 * eps) - g[idx]) < 1e-7


def test_softmax_rows_sum_to_one_and_are_stable():
    z = np.array([[1000.0, 1000.0, -1000.0], [1.0, 2.0, 3.0]])
    p = mlp.softmax(z)
    assert np.allclose(p.sum(axis=1), 1) and np.allclose(p[0], [0.5, 0.5, 0])
    assert np.allclose(p[1], torch.softmax(torch.tensor(z[1]), 0).numpy())


def test_sgd_step_equals_torch_sgd_with_momentum_and_weight_decay():
    params, x, y = _small_problem()
    tparams = _torch_leaves(params)
    opt_w = torch.optim.SGD([W for W, _ in tparams], lr=0.05, momentum=0.9, weight_decay=1e-2)
    opt_b = torch.optim.SGD([b for _, b in tparams], lr=0.05, momentum=0.9)  # no decay on biases
    velocity = [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
    for _ in range(4):
        _, grads = mlp.loss_and_grads(params, x, y)
        mlp.sgd_step(params, grads, velocity, lr=0.05, momentum=0.9, weight_decay=1e-2)
        opt_w.zero_grad()
        opt_b.zero_grad()
        _torch_loss(tparams, x, y).backward()
        opt_w.step()
        opt_b.step()
    for (W, b), (tW, tb) in zip(params, tparams):
        assert np.abs(W - tW.detach().numpy()).max() < 1e-12
        assert np.abs(b - tb.detach().numpy()).max() < 1e-12


def test_cosine_lr_schedule():
    from llmfs.basics.schedule import cosine_lr

    assert cosine_lr(0, 100, 0.1) == pytest.approx(0.1)
    assert cosine_lr(50, 100, 0.1) == pytest.approx(0.05)
    assert cosine_lr(100, 100, 0.1) == pytest.approx(0.0)
    assert cosine_lr(0, 100, 0.1, warmup_steps=9) == pytest.approx(0.01)  # linear warmup
    assert cosine_lr(500, 100, 0.1, min_lr=0.01) == pytest.approx(0.01)  # stays at the floor


def test_preprocess():
    images = np.full((2, 28, 28), 255, dtype=np.uint8)
    x = mlp.preprocess(images)
    assert x.shape == (2, 784) and x.dtype == np.float32
    from llmfs.data import MNIST_MEAN, MNIST_STD

    assert np.allclose(x, (1 - MNIST_MEAN) / MNIST_STD)


def _blobs(n, rng):
    """Three Gaussian blobs in 2-D: an easy classification problem."""
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, size=n)
    return (centers[y] + rng.standard_normal((n, 2))).astype(np.float32), y


def test_train_learns_and_is_deterministic():
    rng = np.random.default_rng(0)
    x, y = _blobs(600, rng)
    x_test, y_test = _blobs(300, rng)
    runs = []
    for _ in range(2):
        params = mlp.init_params([2, 16, 3], np.random.default_rng(1))
        history = mlp.train(params, x, y, x_test, y_test, epochs=5, batch_size=32, lr=0.05, seed=0)
        runs.append((params, history))
    (params, history), (params2, history2) = runs
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["test_acc"][-1] > 0.9 and mlp.accuracy(params, x_test, y_test) == history["test_acc"][-1]
    assert len(history["test_loss"]) == 5
    assert history == history2 and all(np.array_equal(a[0], b[0]) for a, b in zip(params, params2))
    loss, acc = mlp.evaluate(params, x_test, y_test, batch_size=64)  # batching does not change the result
    assert loss == pytest.approx(history["test_loss"][-1], rel=1e-5) and acc == history["test_acc"][-1]
