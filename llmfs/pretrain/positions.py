"""Where a token sits: the three position encodings of notebook 02PT/02, in one module.

- ``sinusoidal_positions``: fixed sines and cosines added to the input (Vaswani et al., 2017; used by
  ``llmfs.pretrain.seq2seq``);
- ``LearnedPositions``: one trained vector per position, added to the input (GPT-2; used by
  ``llmfs.pretrain.gpt``);
- ``rope_cache`` / ``apply_rope``: rotary embeddings that turn queries and keys inside attention
  (RoPE, Su et al., 2021), in the layout Hugging Face's Llama uses (used by ``llmfs.pretrain.llama``).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn

from llmfs.config import check_device


def _check_even(name: str, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n % 2:
        raise ValueError(f"{name} must be an even integer >= 2, got {n!r}")


def _check_length(name: str, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")


def _check_base(name: str, base: float) -> None:
    if isinstance(base, bool) or not isinstance(base, numbers.Real) or not 0 < base < math.inf:
        raise ValueError(f"{name} must be a finite number > 0 (e.g. 10000.0), got {base!r}")


def sinusoidal_positions(max_len: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(max_len, d_model): PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d))."""
    _check_length("max_len", max_len)
    _check_even("d_model", d_model)
    _check_base("base", base)
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (max_len, d/2)
    pe = torch.empty(max_len, d_model)
    pe[:, 0::2], pe[:, 1::2] = angles.sin(), angles.cos()
    return pe


class LearnedPositions(nn.Embedding):
    """A trained vector for each of ``max_len`` positions: ``pos(T)`` -> (T, dim), rows 0..T-1.

    An ``nn.Embedding`` underneath (its weight is GPT-2's ``wpe.weight``), so it cannot say anything
    about a position it never saw: asking for more than ``max_len`` positions raises ``ValueError``.
    """

    def __init__(self, max_len: int, dim: int):
        _check_length("max_len", max_len)
        _check_length("dim", dim)
        super().__init__(max_len, dim)

    def forward(self, T: int) -> torch.Tensor:  # type: ignore[override]
        _check_length("T", T)
        if T > self.num_embeddings:
            raise ValueError(f"sequence of length {T} is longer than the {self.num_embeddings} learned positions")
        return super().forward(torch.arange(T, device=self.weight.device))


def rope_cache(head_dim: int, max_len: int, theta: float = 10000.0,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_len, head_dim): angle[m, i] = m * theta^(-2(i mod d/2)/d).

    Each pair of features (i, i + d/2) of a query or key at position m is rotated by the angle
    m * theta^(-2i/d); a dot product of two rotated vectors then depends only on their distance.
    """
    _check_even("head_dim", head_dim)
    _check_length("max_len", max_len)
    _check_base("theta", theta)
    device = None if device is None else check_device(device)
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv_freq)  # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d): feature i and i + d/2 share an angle
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last axis: a 90-degree turn of every pair."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.size(-1) % 2:
        raise ValueError(f"x must be a tensor whose last axis has an even size, got {getattr(x, 'shape', type(x).__name__)}")
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys. x: (batch, n_heads, T, head_dim); cos, sin: (T, head_dim)."""
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in (x, cos, sin)):
        got = ", ".join(str(getattr(t, "dtype", type(t).__name__)) for t in (x, cos, sin))
        raise TypeError(f"apply_rope needs float tensors x, cos, sin; got {got}")
    if x.dim() < 2 or cos.shape != sin.shape or cos.dim() != 2 or tuple(x.shape[-2:]) != tuple(cos.shape) or x.size(-1) % 2:
        raise ValueError(f"apply_rope needs x (..., T, head_dim) and cos, sin (T, head_dim) of the same T and even "
                         f"head_dim; got x {tuple(x.shape)}, cos {tuple(cos.shape)}, sin {tuple(sin.shape)}")
    if not x.device == cos.device == sin.device:
        raise ValueError(f"x, cos and sin must be on one device, got {x.device}, {cos.device}, {sin.device}")
    return x * cos + rotate_half(x) * sin
