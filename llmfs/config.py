"""Run modes, seeding, device choice and progress bars: what every notebook's setup cell needs.

FAST mode (``LLMFS_FAST=1``, set by ``make test``) runs the same code path on smaller sizes so that
every notebook finishes in minutes on 2 CPU cores. FULL mode (the default) gives the headline results.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np

# The course repository: written here once. Notebooks' Colab badges and setup cells are stamped
# from it by ``python -m tools.notebooks --fix`` and checked by ``tests/test_notebook_conventions.py``.
REPO_URL = "https://github.com/llmfs-course/llmfs"


def is_fast() -> bool:
    """True when the environment variable ``LLMFS_FAST`` is set to 1/true/yes."""
    return os.environ.get("LLMFS_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


FAST: bool = is_fast()


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and (if installed) PyTorch, so two runs print the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # the NumPy-only notebooks do not need torch
        return
    torch.manual_seed(seed)  # seeds CPU and every CUDA device


def device() -> str:
    """The best available device: 'cuda', then 'mps' (Apple), then 'cpu'.

    ``LLMFS_DEVICE`` overrides the choice (e.g. ``LLMFS_DEVICE=cpu`` on a GPU machine).
    """
    forced = os.environ.get("LLMFS_DEVICE")
    if forced:
        return forced
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def progress(iterable=None, **kwargs):
    """A tqdm progress bar that draws as a widget in notebooks and as text elsewhere.

    It is silent under ``make test`` (FAST mode) so that executed notebooks stay readable.
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", is_fast())
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


@dataclass(frozen=True)
class Setup:
    """What ``setup()`` decided; notebooks read ``cfg.fast`` and ``cfg.device``."""

    fast: bool
    device: str
    seed: int

    def pick(self, fast, full):
        """``full`` in FULL mode, ``fast`` in FAST mode: ``n_steps = cfg.pick(200, 5000)``."""
        return fast if self.fast else full


def setup(seed: int = 0, verbose: bool = True) -> Setup:
    """The one call of a notebook's setup cell: seed everything, pick a device, read FAST mode."""
    seed_everything(seed)
    cfg = Setup(fast=is_fast(), device=device(), seed=seed)
    if verbose:
        mode = "FAST (small sizes, for tests)" if cfg.fast else "FULL"
        print(f"llmfs: mode={mode}  device={cfg.device}  seed={seed}")
    return cfg
