"""The course's one learning-rate schedule: linear warmup, then a cosine decay (Loshchilov and Hutter,
2017). Built in 01CB/03 for the NumPy MLP (no warmup, down to 0) and used again by the GPT trainer of
02PT/06 (``llmfs.pretrain.train.get_lr``: warmup, down to ``min_lr``)."""

from __future__ import annotations

import math


def cosine_lr(step: int, total_steps: int, lr: float, min_lr: float = 0.0, warmup_steps: int = 0,
              progress: float | None = None) -> float:
    """The learning rate at ``step`` (0-based) of ``total_steps``.

    - warmup (step < warmup_steps): lr * (step + 1) / (warmup_steps + 1), rising linearly;
    - then min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2, with progress from 0 to 1 counted as
      (step - warmup_steps) / (total_steps - warmup_steps), unless ``progress`` is given (e.g. the
      fraction of a time budget spent). Past the end it stays at min_lr.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if isinstance(lr, bool) or isinstance(min_lr, bool) or not (math.isfinite(lr) and lr > 0 and 0 <= min_lr <= lr):
        raise ValueError(f"need 0 <= min_lr <= lr and lr > 0, got lr={lr!r}, min_lr={min_lr!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, (int, float)) or math.isnan(progress)):
        raise ValueError(f"progress must be None or a number (clipped to [0, 1]), got {progress!r}")
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    if progress is None:
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
