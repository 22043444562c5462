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
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.config import check_device


def _describe(**tensors) -> str:
    """'q (2, 5, 8) float32 on cpu, mask None' for error messages: what a learner actually passed."""
    return ", ".join(f"{name} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')} on {t.device}" if isinstance(t, torch.Tensor)
                     else f"{name} {type(t).__name__}" for name, t in tensors.items())


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None,
                                 dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v.

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv); mask: bool, broadcastable to (..., Tq, Tk),
    True where the query may attend. Returns the output (..., Tq, dv) and the weights (..., Tq, Tk).
    """
    tensors = {"q": q, "k": k, "v": v}
    if not (all(isinstance(t, torch.Tensor) and t.dim() >= 2 and t.is_floating_point() for t in tensors.values())
            and q.dtype == k.dtype == v.dtype and q.device == k.device == v.device
            and q.size(-1) == k.size(-1) and k.size(-2) == v.size(-2)):
        raise ValueError("q, k, v must be float tensors (..., Tq, d), (..., Tk, d), (..., Tk, dv) of one dtype and "
                         f"device, got {_describe(**tensors)}")
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the leading (batch, head) sizes of q, k, v do not broadcast: {_describe(**tensors)}") from None
    scores_shape = (*batch, q.size(-2), k.size(-2))
    if mask is not None:
        if (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.device != q.device
                or mask.dim() > len(scores_shape)):
            raise ValueError(f"mask must be a bool tensor on q's device, True where a query may attend, "
                             f"got {_describe(mask=mask)}")
        try:
            fits = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"mask {tuple(mask.shape)} does not broadcast to the scores (..., Tq, Tk) = {scores_shape}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) or not 0 <= dropout_p < 1:
        raise ValueError(f"dropout_p must be a number in [0, 1), got {dropout_p!r}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight on blocked keys
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) bool, lower triangular: position t may attend to positions 0..t only."""
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    device = None if device is None else check_device(device)
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """tokens (B, T) -> (B, 1, 1, T) bool: True on real tokens, False on padding (for every head/query)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point() or tokens.is_complex():
        raise ValueError(f"tokens must be a (batch, time) tensor of integer ids, got {_describe(tokens=tokens)}")
    if isinstance(pad_id, bool) or not isinstance(pad_id, numbers.Integral):
        raise TypeError(f"pad_id must be an integer token id, got {pad_id!r}")
    return (tokens != pad_id)[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """n_heads attentions side by side, each on a d_model / n_heads slice of projected q, k, v.

    ``last_weights`` keeps the attention weights (B, n_heads, Tq, Tk) of the latest call, for plots.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        for name, value in (("d_model", d_model), ("n_heads", n_heads)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of n_heads={n_heads}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.last_weights: torch.Tensor | None = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, n_heads, T, head_dim)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.size(-1) != self.q_proj.out_features:
            raise ValueError(f"x must be (B, T, {self.q_proj.out_features}), got {_describe(x=x)}")
        B, T, D = x.shape
        return x.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, Tq, d_model) gives the queries; memory (B, Tk, d_model) the keys and values
        (default: x itself, self-attention). mask: bool, broadcastable to (B, n_heads, Tq, Tk)."""
        memory = x if memory is None else memory
        d_model, w = self.q_proj.in_features, self.q_proj.weight
        if not (isinstance(x, torch.Tensor) and isinstance(memory, torch.Tensor) and x.dim() == memory.dim() == 3
                and x.size(0) == memory.size(0) and x.size(-1) == memory.size(-1) == d_model
                and x.device == memory.device == w.device and x.is_floating_point() and memory.is_floating_point()
                and (x.dtype == memory.dtype == w.dtype or torch.is_autocast_enabled(x.device.type))):
            raise ValueError(f"x must be (B, Tq, {d_model}) and memory (B, Tk, {d_model}) with the same B, in the module's "
                             f"{str(w.dtype).removeprefix('torch.')} on {w.device}, got {_describe(x=x, memory=memory)}")
        q, k, v = self.split_heads(self.q_proj(x)), self.split_heads(self.k_proj(memory)), self.split_heads(self.v_proj(memory))
        out, self.last_weights = scaled_dot_product_attention(
            q, k, v, mask, dropout_p=self.dropout if self.training else 0.0)
        B, H, Tq, hd = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, Tq, H * hd))  # heads side by side again

    @torch.no_grad()
    def load_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (its q, k, v rows are stacked)."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        theirs = (mha.embed_dim, mha.num_heads, mha.in_proj_bias is not None)
        ours = (self.q_proj.in_features, self.n_heads, self.q_proj.bias is not None)
        if theirs != ours:
            raise ValueError(f"mha has (embed_dim, num_heads, bias) = {theirs}, this module {ours}")
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
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A new module with the weights (and dropout) of ``mha``."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        ours = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=mha.in_proj_bias is not None)
        return ours.load_torch(mha)
