"""Plotting helpers shared by the notebooks (matplotlib only).

    show_images(x[:20], labels=y[:20], preds=p[:20])     # a grid of digits, wrong predictions in red
    plot_curves({"train_loss": tl, "test_loss": vl})     # one line per key
    cm = plot_confusion_matrix(y_true, y_pred)           # heatmap with counts; returns the matrix
    plot_graph(loss)                                     # the computation graph below an autograd Value
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes


def _check(ax=None, title=None, **labels) -> dict[str, np.ndarray]:
    """TypeError / ValueError unless ``ax`` is None or matplotlib Axes and ``title`` None or a str; each
    of ``labels`` (name=values) must be a 1-D sequence of integers >= 0. Returns those as int64 arrays."""
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be None or a matplotlib Axes, got {type(ax).__name__}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be None or a str, got {type(title).__name__}")
    arrays = {}
    for name, values in labels.items():
        a = np.asarray(values) if not isinstance(values, (str, bytes, Mapping)) else None
        if a is None or a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
            got = f"{a.dtype} array of shape {a.shape}" if a is not None else type(values).__name__
            raise ValueError(f"{name} must be a 1-D sequence of integer class labels, got {got}")
        if a.size and a.min() < 0:
            raise ValueError(f"{name} must hold class labels >= 0, got {a.min()}")
        arrays[name] = a.astype(np.int64)
    return arrays


def show_images(
    images,
    labels: Sequence[int] | None = None,
    preds: Sequence[int] | None = None,
    ncols: int = 10,
    ax_size: float = 1.0,
    title: str | None = None,
):
    """Draw grayscale images in a grid and return the figure.

    images: (n, h, w) or (n, h*w) with a square h*w. Captions are ``label`` or ``label/pred``;
    a caption is red when ``pred != label``.
    """
    _check(title=title)
    images = np.asarray(images)
    if images.ndim not in (2, 3) or images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.number):
        raise ValueError(f"images must be numbers shaped (n, h, w) or (n, h*w), got {images.dtype} {images.shape}")
    n = len(images)
    if images.ndim == 2 and round(math.sqrt(images.shape[1])) ** 2 != images.shape[1]:
        raise ValueError(f"flat images (n, h*w) must be square, got {images.shape[1]} pixels each")
    for name, values in (("labels", labels), ("preds", preds)):
        if values is not None and (isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) < n):
            raise ValueError(f"{name} must be None or a sequence of one label per image ({n}), got {values!r:.60}")
    if isinstance(ncols, bool) or not isinstance(ncols, numbers.Integral) or ncols < 1:
        raise ValueError(f"ncols must be an integer >= 1, got {ncols!r}")
    if isinstance(ax_size, bool) or not isinstance(ax_size, numbers.Real) or not 0 < ax_size < 100:
        raise ValueError(f"ax_size must be a number of inches in (0, 100), got {ax_size!r}")
    if images.ndim == 2:  # flat vectors: (n, h*w) -> (n, h, w)
        side = int(round(np.sqrt(images.shape[1])))
        images = images.reshape(n, side, side)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))  # ceil division
    height = nrows * ax_size * (1.25 if labels is not None else 1.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * ax_size, height), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k], cmap="gray_r")
        if labels is not None:
            caption, color = f"{labels[k]}", "black"
            if preds is not None:
                caption += f"/{preds[k]}"
                color = "black" if preds[k] == labels[k] else "red"
            ax.set_title(caption, fontsize=8, color=color, pad=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(history: dict[str, list[float]], xlabel: str = "epoch", title: str | None = None, ax=None):
    """One line per key of ``history`` (e.g. {'train_loss': [...], 'test_loss': [...]}); returns the axes.

    The x axis counts from 1 (the value after the first epoch/step).
    """
    _check(ax, title)
    if not isinstance(history, Mapping) or not history:
        raise TypeError(f"history must be a non-empty dict of name -> list of numbers, got {type(history).__name__}")
    for name, values in history.items():
        a = np.asarray(values) if not isinstance(values, (str, bytes)) else None
        if a is None or a.ndim != 1 or a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"history[{name!r}] must be a list of numbers, got {values!r:.60}")
    if not isinstance(xlabel, str):
        raise TypeError(f"xlabel must be a str, got {type(xlabel).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in history.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o" if len(values) <= 30 else None, label=name)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """``cm[i, j]`` = how many examples of true class i were predicted as class j. (C, C) int64."""
    labels = _check(y_true=y_true, y_pred=y_pred)
    y_true, y_pred = labels["y_true"], labels["y_pred"]
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}")
    largest = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)))
    if n_classes is None:
        n_classes = largest + 1
    elif isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise ValueError(f"n_classes must be None or an integer >= 1, got {n_classes!r}")
    elif largest >= n_classes:
        raise ValueError(f"a label is {largest}, out of range for n_classes={n_classes}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def plot_confusion_matrix(y_true, y_pred, n_classes: int | None = None, ax=None, title: str | None = None) -> np.ndarray:
    """Draw the confusion matrix as a heatmap with counts in each cell; return the (C, C) matrix.

    Rows are true classes, columns predicted classes.
    """
    _check(ax, title)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    c = cm.shape[0]
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * c + 1.5, 0.5 * c + 1.2))
    ax.imshow(cm, cmap="Blues")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(c):
        for j in range(c):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set(xticks=range(c), yticks=range(c), xlabel="predicted", ylabel="true")
    if title:
        ax.set_title(title)
    return cm


def plot_graph(root, ax=None, title: str | None = None):
    """Draw the computation graph that produced ``root`` (a scalar autograd node such as ``engine.Value``).

    Any node with ``data``, ``grad``, ``_prev`` (its inputs) and ``_op`` works. One box per node showing
    its label and op, data and grad; arrows run from inputs to outputs, left to right. For small
    graphs (tens of nodes). Returns the axes.
    """
    _check(ax, title)
    if not all(hasattr(root, a) for a in ("data", "grad", "_prev", "_op")):
        raise TypeError(f"root must be an autograd node (with data, grad, _prev and _op) such as a Value, "
                        f"got {type(root).__name__}")
    depth: dict[int, int] = {}
    nodes: list = []

    def visit(v) -> int:  # depth = longest path from a leaf
        if id(v) not in depth:
            depth[id(v)] = 1 + max((visit(c) for c in v._prev), default=-1)
            nodes.append(v)
        return depth[id(v)]

    visit(root)
    for v in reversed(nodes):  # outputs before inputs: move each leaf next to its first consumer
        for c in v._prev:
            if not c._prev:
                depth[id(c)] = max(depth[id(c)], depth[id(v)] - 1)
    columns: dict[int, list] = {}
    for v in nodes:
        columns.setdefault(depth[id(v)], []).append(v)
    pos = {id(v): (d, i - (len(col) - 1) / 2) for d, col in columns.items() for i, v in enumerate(col)}
    if ax is None:
        height = max(len(col) for col in columns.values())
        _, ax = plt.subplots(figsize=(2.0 * len(columns) + 1, 0.9 * height + 1.2))
    boxes = {}
    for v in nodes:
        label = getattr(v, "label", "")
        name = label if not v._op or v._op in label else (f"{label} ({v._op})" if label else v._op)
        boxes[id(v)] = ax.text(*pos[id(v)], f"{name or 'input'}\ndata {v.data:.4g}\ngrad {v.grad:.4g}",
                               ha="center", va="center", fontsize=8, family="monospace",
                               bbox=dict(boxstyle="round", facecolor="#fde8c8" if v._prev else "#dbe9f6", edgecolor="gray"))
    for v in nodes:
        for c in v._prev:  # from the right edge of the input's box to the left edge of the output's box
            ax.annotate("", xy=(0, 0.5), xycoords=boxes[id(v)], xytext=(1, 0.5), textcoords=boxes[id(c)],
                        arrowprops=dict(arrowstyle="->", color="gray", shrinkA=2, shrinkB=2))
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
