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
import numbers

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

    sizes: the layer widths, input first ([784, 256, 10]: one hidden layer), at least two positive ints.
    scheme: 'he' (gain 2, for ReLU; He et al. 2015), 'xavier' (gain 1; Glorot and Bengio 2010 for
    tanh, in its fan_in form), or a float > 0: a fixed standard deviation (to show what goes wrong).
    """
    if (not isinstance(sizes, (list, tuple)) or len(sizes) < 2
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in sizes)):
        raise ValueError(f"sizes must be a list of at least 2 positive ints (input, ..., classes), got {sizes!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if isinstance(scheme, str):
        if scheme not in ("he", "xavier"):
            raise ValueError(f"scheme must be 'he', 'xavier' or a float > 0, got {scheme!r}")
    elif isinstance(scheme, bool) or not isinstance(scheme, numbers.Real) or not 0 < scheme < math.inf:
        raise ValueError(f"scheme must be 'he', 'xavier' or a float > 0, got {scheme!r}")
    if not isinstance(dtype, (type, np.dtype, str)) or not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a NumPy float type such as np.float32, got {dtype!r}")
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


def _check(params: Params, x=..., y=..., n_classes: int | None = None) -> None:
    """TypeError / ValueError unless ``params`` is [(W (D_in, D_out), b (D_out,)), ...], each layer's D_in
    the D_out before it; ``x`` a (B, D_in) array of numbers; ``y`` B integer labels in 0..C-1. An argument
    left out (``...``) is not checked; ``params=None`` skips the layers (then ``n_classes`` gives C)."""
    if params is not None:
        if not isinstance(params, (list, tuple)) or not params:
            raise TypeError(f"params must be a non-empty list of (W, b) pairs, got {type(params).__name__}")
        for i, layer in enumerate(params):
            W, b = layer if isinstance(layer, (tuple, list)) and len(layer) == 2 else (None, None)
            if not (isinstance(W, np.ndarray) and isinstance(b, np.ndarray) and W.ndim == 2 and b.shape == W.shape[1:]
                    and np.issubdtype(W.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
                got = (f"{W.dtype} {W.shape} and {b.dtype} {b.shape}" if isinstance(W, np.ndarray) and isinstance(b, np.ndarray)
                       else repr(layer)[:60])
                raise ValueError(f"params[{i}] must be a pair (W float (D_in, D_out), b float (D_out,)), got {got}")
            if i and W.shape[0] != params[i - 1][0].shape[1]:
                raise ValueError(f"params[{i}] takes {W.shape[0]} inputs but layer {i - 1} gives {params[i - 1][0].shape[1]}")
        n_classes = params[-1][0].shape[1]
        if x is not ... and (not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != params[0][0].shape[0]
                              or x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number)):
            got = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"x must be a (batch, {params[0][0].shape[0]}) array of numbers, got {got}")
    if y is not ...:
        if not isinstance(y, np.ndarray) or y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            got = f"{y.dtype} array of shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise ValueError(f"y must be ({len(x)},) integer labels, one per row of x, got {got}")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"labels must be in 0..{n_classes - 1}, got values in {y.min()}..{y.max()}")


def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """x (B, D) -> logits (B, C), and the cache of every layer's input: [x, h1, h2, ...].

    Hidden layers: h = relu(h_prev @ W + b). The last layer has no activation.
    """
    _check(params, x)
    cache = [x]
    h = x
    for i, (W, b) in enumerate(params):
        z = h @ W + b
        h = z if i == len(params) - 1 else np.maximum(z, 0)
        cache.append(h)
    return h, cache[:-1]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, (B, C) -> (B, C); subtracting the row max keeps exp from overflowing."""
    if not isinstance(z, np.ndarray) or z.ndim != 2 or not np.issubdtype(z.dtype, np.floating):
        got = f"{z.dtype} array of shape {z.shape}" if isinstance(z, np.ndarray) else type(z).__name__
        raise ValueError(f"z must be a (batch, classes) float array, got {got}")
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits.

    logits (B, C), y (B,) integer labels -> (loss, dlogits (B, C)) with dlogits = (softmax - onehot) / B.
    """
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or len(logits) < 1 or not np.issubdtype(logits.dtype, np.floating):
        got = f"{logits.dtype} array of shape {logits.shape}" if isinstance(logits, np.ndarray) else type(logits).__name__
        raise ValueError(f"logits must be a (batch >= 1, classes) float array, got {got}")
    _check(None, logits, y, n_classes=logits.shape[1])
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
    _check(params)
    widths = [W.shape[0] for W, _ in params]
    if (not isinstance(cache, (list, tuple)) or len(cache) != len(params)
            or not all(isinstance(h, np.ndarray) and h.ndim == 2 for h in cache)
            or [h.shape for h in cache] != [(len(cache[0]), d) for d in widths]):
        got = [getattr(h, "shape", type(h).__name__) for h in cache] if isinstance(cache, (list, tuple)) else type(cache).__name__
        raise ValueError(f"cache must be forward's list of layer inputs, shapes (B, D) with D = {widths}, got {got}")
    B, C = len(cache[0]), params[-1][0].shape[1]
    if not isinstance(dlogits, np.ndarray) or dlogits.shape != (B, C):
        got = getattr(dlogits, "shape", type(dlogits).__name__)
        raise ValueError(f"dlogits must be a ({B}, {C}) array like the logits, got {got}")
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


def sgd_step(params: Params, grads: Params, velocity: Params, lr: float, momentum: float = 0.9,
             weight_decay: float = 0.0) -> None:
    """SGD with momentum, in place:  v <- momentum * v + g (+ weight_decay * W);  p <- p - lr * v.

    Weight decay applies to weights only, not to biases. Same update rule as torch.optim.SGD.
    """
    _check(params)
    want = [(W.shape, b.shape) for W, b in params]
    for name, pairs in (("grads", grads), ("velocity", velocity)):
        try:
            got = [(a.shape, c.shape) for a, c in pairs]
        except (TypeError, ValueError, AttributeError):  # not a list of pairs of arrays
            got = type(pairs).__name__
        if got != want:
            raise ValueError(f"{name} must be shaped like params, {want}, got {got}")
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for (W, b), (dW, db), (vW, vb) in zip(params, grads, velocity):
        vW *= momentum
        vW += dW + weight_decay * W
        vb *= momentum
        vb += db
        W -= lr * vW
        b -= lr * vb


def predict(params: Params, x: np.ndarray, batch_size: int = 10_000) -> np.ndarray:
    """Predicted class of every row of x: (N, D) -> (N,) int."""
    _check(params, x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1 or len(x) < 1:
        raise ValueError(f"predict needs batch_size >= 1 and at least one row, got batch_size={batch_size!r}, {len(x)} rows")
    return np.concatenate([forward(params, x[i : i + batch_size])[0].argmax(axis=1) for i in range(0, len(x), batch_size)])


def accuracy(params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of x classified as y."""
    _check(params, x, y)
    return float((predict(params, x) == y).mean())


def evaluate(params: Params, x: np.ndarray, y: np.ndarray, batch_size: int = 10_000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on a whole dataset, in batches."""
    _check(params, x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1 or len(x) < 1:
        raise ValueError(f"evaluate needs batch_size >= 1 and at least one row, got batch_size={batch_size!r}, {len(x)} rows")
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
    _check(params, x, y)
    if (x_test is None) != (y_test is None):
        raise ValueError("give both x_test and y_test, or neither")
    if x_test is not None:
        _check(params, x_test, y_test)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if len(x) < 1:
        raise ValueError("x holds no training examples")
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
