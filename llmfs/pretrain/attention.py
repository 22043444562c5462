"""Attention, built from its equation (Vaswani et al., 2017).

    out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(T))
    mha = MultiHeadAttention(d_model=64, n_heads=4)
    y = mha(x, mask=padding_mask(tokens, pad_id=0))          # self-attention, (B, T, 64)
    y = mha(x, memory, mask=...)                             # cross-attention: queries from x
    mha = MultiHeadAttention.from_torch(nn.MultiheadAttention(64, 4, batch_first=True))

Masks are boolean and use PyTorch's ``scaled_dot_product_attention`` convention: True where a query
MAY attend to a key. (``nn.MultiheadAttention``'s ``attn_mask`` / ``key_padding_mask`` use the
opposite: True there means "blocked".)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None,
                                 dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v.

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv); mask: bool, broadcastable to (..., Tq, Tk),
    True where the query may attend. Returns the output (..., Tq, dv) and the weights (..., Tq, Tk).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight on blocked keys
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) bool, lower triangular: position t may attend to positions 0..t only."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """tokens (B, T) -> (B, 1, 1, T) bool: True on real tokens, False on padding (for every head/query)."""
    return (tokens != pad_id)[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """n_heads attentions side by side, each on a d_model / n_heads slice of projected q, k, v.

    ``last_weights`` keeps the attention weights (B, n_heads, Tq, Tk) of the latest call, for plots.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of n_heads={n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.last_weights: torch.Tensor | None = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, n_heads, T, head_dim)."""
        B, T, D = x.shape
        return x.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, Tq, d_model) gives the queries; memory (B, Tk, d_model) the keys and values
        (default: x itself, self-attention). mask: bool, broadcastable to (B, n_heads, Tq, Tk)."""
        memory = x if memory is None else memory
        q, k, v = self.split_heads(self.q_proj(x)), self.split_heads(self.k_proj(memory)), self.split_heads(self.v_proj(memory))
        out, self.last_weights = scaled_dot_product_attention(
            q, k, v, mask, dropout_p=self.dropout if self.training else 0.0)
        B, H, Tq, hd = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, Tq, H * hd))  # heads side by side again

    @torch.no_grad()
    def load_torch(self, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (its q, k, v rows are stacked)."""
        if not mha._qkv_same_embed_dim:
            raise ValueError("only nn.MultiheadAttention with kdim = vdim = embed_dim is supported")
        for proj, w in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_weight.chunk(3)):
            proj.weight.copy_(w)
        if mha.in_proj_bias is not None:
            for proj, b in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_bias.chunk(3)):
                proj.bias.copy_(b)
        self.out_proj.load_state_dict(mha.out_proj.state_dict())
        return self

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """A new module with the weights (and dropout) of ``mha``."""
        ours = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=mha.in_proj_bias is not None)
        return ours.load_torch(mha)
