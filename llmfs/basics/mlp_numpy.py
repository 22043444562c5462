"""A multi-layer perceptron in plain NumPy: init, forward, backward, mini-batch SGD with momentum.

Built by hand in notebook 01CB/03 (MNIST); the notebook then trains with ``train`` below, and
``python -m tools.bench_mlp`` times it.

    params = init_params([784, 256, 10], np.random.default_rng(0))   # He init
    history = train(params, x_train, y_train, x_test, y_test, epochs=20)
    accuracy(params, x_test, y_test)

Shapes: a batch ``x`` is (B, D) with one example per row; layer l holds ``W`` (D_in, D_out) and
``b`` (D_out,), so a layer is ``x @ W + b``. Hidden layers use ReLU; the last layer gives logits.
"""

from __future__ import annotations

import math

import numpy as np

from llmfs.basics.schedule import cosine_lr
from llmfs.config import progress
from llmfs.data import normalize_mnist

Params = list[tuple[np.ndarray, np.ndarray]]  # [(W (D_in, D_out), b (D_out,)), ...], one pair per layer

# The FULL-mode recipe of notebook 03 (and of ``python -m tools.bench_mlp``): one hidden layer of 256
# ReLUs, He init, batch 128, SGD with momentum 0.9, cosine learning rate from 0.1, weight decay 5e-4.
MNIST_RECIPE = {"sizes": [784, 256, 10], "epochs": 15, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) in 0..255 -> float32 (N, 784), standardised (``llmfs.data.normalize_mnist``)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected MNIST images of shape (N, 28, 28), got {images.shape}")
    return normalize_mnist(images).reshape(len(images), -1)


def init_params(sizes: list[int], rng: np.random.Generator, scheme: str = "he", dtype=np.float32) -> Params:
    """Weights drawn from N(0, gain / fan_in), biases zero.

    scheme: 'he' (gain 2, for ReLU; He et al. 2015), 'xavier' (gain 1; Glorot and Bengio 2010 for
    tanh, in its fan_in form), or a float: a fixed standard deviation (to show what goes wrong).
    """
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        if scheme == "he":
            std = math.sqrt(2.0 / d_in)
        elif scheme == "xavier":
            std = math.sqrt(1.0 / d_in)
        else:
            std = float(scheme)
        params.append(((rng.standard_normal((d_in, d_out)) * std).astype(dtype), np.zeros(d_out, dtype=dtype)))
    return params


def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """x (B, D) -> logits (B, C), and the cache of every layer's input: [x, h1, h2, ...].

    Hidden layers: h = relu(h_prev @ W + b). The last layer has no activation.
    """
    cache = [x]
    h = x
    for i, (W, b) in enumerate(params):
        z = h @ W + b
        h = z if i == len(params) - 1 else np.maximum(z, 0)
        cache.append(h)
    return h, cache[:-1]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, (B, C) -> (B, C); subtracting the row max keeps exp from overflowing."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits.

    logits (B, C), y (B,) integer labels -> (loss, dlogits (B, C)) with dlogits = (softmax - onehot) / B.
    """
    B = len(y)
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(B), y].mean()
    dlogits = np.exp(log_probs)
    dlogits[np.arange(B), y] -= 1
    return float(loss), dlogits / B


def backward(params: Params, cache: list[np.ndarray], dlogits: np.ndarray) -> Params:
    """Backpropagate dL/dlogits (B, C) through the layers; returns [(dW, db), ...] shaped like params.

    For a layer z = h @ W + b:  dW = h.T @ dz,  db = sum_rows(dz),  dh = dz @ W.T,
    and through ReLU (h = max(z, 0)):  dz = dh * (h > 0).
    """
    grads = []
    dz = dlogits
    for i in reversed(range(len(params))):
        W, _ = params[i]
        h = cache[i]
        grads.append((h.T @ dz, dz.sum(axis=0)))
        if i > 0:
            dz = (dz @ W.T) * (h > 0)
    return grads[::-1]


def loss_and_grads(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """One forward and one backward pass: (mean cross-entropy, gradients)."""
    logits, cache = forward(params, x)
    loss, dlogits = cross_entropy(logits, y)
    return loss, backward(params, cache, dlogits)


def sgd_step(params: Params, grads: Params, velocity: Params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
    """SGD with momentum, in place:  v <- momentum * v + g (+ weight_decay * W);  p <- p - lr * v.

    Weight decay applies to weights only, not to biases. Same update rule as torch.optim.SGD.
    """
    for (W, b), (dW, db), (vW, vb) in zip(params, grads, velocity):
        vW *= momentum
        vW += dW + weight_decay * W
        vb *= momentum
        vb += db
        W -= lr * vW
        b -= lr * vb


def predict(params: Params, x: np.ndarray, batch_size: int = 10_000) -> np.ndarray:
    """Predicted class of every row of x: (N, D) -> (N,) int."""
    return np.concatenate([forward(params, x[i : i + batch_size])[0].argmax(axis=1) for i in range(0, len(x), batch_size)])


def accuracy(params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of x classified as y."""
    return float((predict(params, x) == y).mean())


def evaluate(params: Params, x: np.ndarray, y: np.ndarray, batch_size: int = 10_000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on a whole dataset, in batches."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits, _ = forward(params, x[i : i + batch_size])
        total_loss += cross_entropy(logits, y[i : i + batch_size])[0] * len(logits)
        correct += int((logits.argmax(axis=1) == y[i : i + batch_size]).sum())
    return total_loss / len(x), correct / len(x)


def train(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Mini-batch SGD with momentum and a cosine learning-rate schedule; trains ``params`` in place.

    Each epoch visits the training set once in a fresh random order (``seed`` fixes the orders).
    Returns the history: 'train_loss' (mean over the epoch's batches) and, with a test set,
    'test_loss' and 'test_acc', one value per epoch.
    """
    rng = np.random.default_rng(seed)
    velocity = [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total_steps, step = epochs * steps_per_epoch, 0
    history: dict[str, list[float]] = {"train_loss": []}
    if x_test is not None:
        history.update({"test_loss": [], "test_acc": []})
    for _ in progress(range(epochs), desc="epochs"):
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss, grads = loss_and_grads(params, x[idx], y[idx])
            sgd_step(params, grads, velocity, cosine_lr(step, total_steps, lr), momentum, weight_decay)
            losses.append(loss)
            step += 1
        history["train_loss"].append(float(np.mean(losses)))
        if x_test is not None:
            test_loss, test_acc = evaluate(params, x_test, y_test)
            history["test_loss"].append(test_loss)
            history["test_acc"].append(test_acc)
    return history
