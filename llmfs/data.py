"""Loaders for the course's datasets. Every file comes from ``llmfs.assets`` (cached, hash-checked).

    x_train, y_train, x_test, y_test = load_mnist()     # uint8 (60000, 28, 28), uint8 (60000,), ...
    text = load_kjv()                                    # 4.3M characters of English
    rows = load_rotten_tomatoes()                        # [{'category': 'fresh', 'text': ...}, ...]
"""

from __future__ import annotations

import bz2
import csv
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from llmfs import assets


class MNIST(tuple):
    """``(x_train, y_train, x_test, y_test)``; also available as attributes."""

    def __new__(cls, x_train, y_train, x_test, y_test):
        self = super().__new__(cls, (x_train, y_train, x_test, y_test))
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        return self


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, ...]:
    import zarr  # Zarr v3 zip; blosc-zstd chunks (numcodecs)

    store = zarr.storage.ZipStore(assets.path("mnist"), mode="r")
    try:
        group = zarr.open_group(store=store, mode="r")
        arrays = tuple(np.asarray(group[k][:]) for k in ("train_images", "train_labels", "test_images", "test_labels"))
    finally:
        store.close()
    for a in arrays:
        a.setflags(write=False)  # shared by every call: copy before changing
    return arrays


def load_mnist() -> MNIST:
    """MNIST as uint8 arrays: images (60000, 28, 28) and (10000, 28, 28) in 0..255, labels in 0..9.

    The arrays are read-only and shared between calls; ``x.astype(np.float32) / 255`` makes a copy.
    """
    x_train, y_train, x_test, y_test = _mnist_arrays()
    return MNIST(x_train, y_train, x_test, y_test)


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel mean and std of the 60,000 training images, in [0, 1]


def normalize_mnist(images: np.ndarray) -> np.ndarray:
    """uint8 pixels in 0..255 (any shape) -> float32, scaled to [0, 1] then standardised with the
    training set's mean and std: the one MNIST normalisation of every notebook and model."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"normalize_mnist expects uint8 pixels (0..255), got {images.dtype}")
    return (images.astype(np.float32) / 255.0 - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)


def kjv_verses() -> list[str]:
    """The 31,103 verses of the King James Bible, in order, as plain strings."""
    with open(assets.path("kjv"), encoding="utf-8") as f:
        return [json.loads(line)["text"].strip() for line in f if line.strip()]


def load_kjv() -> str:
    """The King James Bible as one text, one verse per line: the course's pretraining corpus."""
    return "\n".join(kjv_verses()) + "\n"


def load_hamlet() -> str:
    """Shakespeare's Hamlet as plain text (about 175k characters)."""
    return Path(assets.path("hamlet")).read_text(encoding="utf-8")


def load_rotten_tomatoes() -> list[dict[str, str]]:
    """13,905 Rotten Tomatoes rows: dicts with ``category`` ('fresh', 'rotten' or 'plot'), ``text``,
    ``movie_name`` and the csv's other columns."""
    raw = bz2.decompress(Path(assets.path("rotten_tomatoes")).read_bytes()).decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw)))


def gpt2_bpe_files() -> tuple[Path, Path]:
    """GPT-2's original tokenizer files: ``(encoder.json, vocab.bpe)``."""
    return assets.path("gpt2_encoder"), assets.path("gpt2_vocab_bpe")


def load_pydoc_topics() -> dict[str, str]:
    """CPython's language-reference help topics (ships with Python): ``{topic: text}``."""
    from pydoc_data.topics import topics

    return dict(topics)
