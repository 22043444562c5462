"""Rotary position embeddings (RoPE, Su et al. 2021), in the layout Hugging Face's Llama uses.

Each pair of features (i, i + d/2) of a query or key at position m is rotated by the angle
m * theta^(-2i/d). A dot product of two rotated vectors then depends only on their distance.
"""

from __future__ import annotations

import torch


def rope_cache(head_dim: int, max_len: int, theta: float = 10000.0,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_len, head_dim): angle[m, i] = m * theta^(-2(i mod d/2)/d)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv_freq)  # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d): feature i and i + d/2 share an angle
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last axis: a 90-degree turn of every pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys. x: (batch, n_heads, T, head_dim); cos, sin: (T, head_dim)."""
    return x * cos + rotate_half(x) * sin
