"""Run modes, seeding, device choice and progress bars: what every notebook's setup cell needs.

FAST mode (``LLMFS_FAST=1``, set by ``make test``) runs the same code path on smaller sizes so that
every notebook finishes in minutes on 2 CPU cores. FULL mode (the default) gives the headline results.
"""

from __future__ import annotations

import logging
import numbers
import os
import random
import re
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
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer in 0..2**32 - 1, got {seed!r}")
    if not 0 <= seed < 2**32:  # NumPy's limit
        raise ValueError(f"seed must be an integer in 0..2**32 - 1, got {seed!r}")
    seed = int(seed)
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

    ``LLMFS_DEVICE`` overrides the choice (e.g. ``LLMFS_DEVICE=cpu`` on a GPU machine); a value that
    is not a device of this machine raises ``ValueError``.
    """
    forced = os.environ.get("LLMFS_DEVICE", "").strip()
    if forced:
        return check_device(forced, source="LLMFS_DEVICE")
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def check_device(name, source: str = "device") -> str:
    """``name`` ('cpu', 'cuda', 'cuda:N', 'mps' or a ``torch.device``) as a string, when this machine
    has that device; otherwise a ``ValueError`` (``TypeError`` for a non-string) that names ``source``."""
    try:
        import torch
    except ImportError:  # the NumPy-only notebooks: the CPU is the only device
        torch = None
    if torch is not None and isinstance(name, torch.device):
        name = str(name)
    expected = f"{source} must be 'cpu', 'cuda', 'cuda:N' or 'mps'"
    if not isinstance(name, str):
        raise TypeError(f"{expected}, got {name!r}")
    match = re.fullmatch(r"cpu|mps|cuda(?::(\d+))?", name.strip().lower())
    if match is None:
        raise ValueError(f"{expected}, got {name!r}")
    name = match.group(0)
    if name == "mps":
        available = torch is not None and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        why = "no Apple GPU (MPS) is available"
    elif name.startswith("cuda"):
        count = torch.cuda.device_count() if torch is not None and torch.cuda.is_available() else 0
        available, why = int(match.group(1) or 0) < count, f"this machine has {count} CUDA device(s)"
    else:
        available, why = True, ""
    if not available:
        hint = " or unset LLMFS_DEVICE" if source == "LLMFS_DEVICE" else ""
        raise ValueError(f"{source}={name!r}, but {why}: use 'cpu'{hint}")
    return name


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
    # bitsandbytes (imported by peft) warns on some CPUs that an optional kernel package is missing;
    # results are the same without it, so the notice would only puzzle a learner
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    cfg = Setup(fast=is_fast(), device=device(), seed=seed)
    if verbose:
        mode = "FAST (small sizes, for tests)" if cfg.fast else "FULL"
        print(f"llmfs: mode={mode}  device={cfg.device}  seed={seed}")
    return cfg


def headline(name: str, value) -> None:
    """Print one headline result of a notebook, e.g. ``headline("test accuracy", f"{acc:.2%}")``.

    The line reads ``headline: <name> = <value>``; ``make full`` collects these lines and records
    them, with each notebook's wall time, in its series README.
    """
    if not isinstance(name, str) or not name.strip() or "=" in name or "\n" in name:
        raise ValueError(f"a headline name is a short one-line str without '=', got {name!r}")
    text = str(value)
    if "\n" in text:
        raise ValueError(f"a headline value prints on one line, got {text!r}")
    print(f"headline: {name} = {text}")
