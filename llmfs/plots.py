"""Plotting helpers shared by the notebooks (matplotlib only).

    show_images(x[:20], labels=y[:20], preds=p[:20])     # a grid of digits, wrong predictions in red
    plot_curves({"train_loss": tl, "test_loss": vl})     # one line per key
    cm = plot_confusion_matrix(y_true, y_pred)           # heatmap with counts; returns the matrix
    plot_graph(loss)                                     # the computation graph below an autograd Value
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


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
    images = np.asarray(images)
    n = len(images)
    if images.ndim == 2:  # flat vectors: (n, h*w) -> (n, h, w)
        side = int(round(np.sqrt(images.shape[1])))
        images = images.reshape(n, side, side)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))  # ceil division
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * ax_size, nrows * ax_size * (1.25 if labels is not None else 1.0)), squeeze=False)
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
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if n_classes is None:
        n_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def plot_confusion_matrix(y_true, y_pred, n_classes: int | None = None, ax=None, title: str | None = None) -> np.ndarray:
    """Draw the confusion matrix as a heatmap with counts in each cell; return the (C, C) matrix.

    Rows are true classes, columns predicted classes.
    """
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
