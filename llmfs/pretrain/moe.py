"""A sparse mixture of experts (MoE): a router sends each token to ``top_k`` of ``n_experts`` SwiGLU MLPs.

    moe = MoE(dim=128, hidden_dim=256, n_experts=8, top_k=2)      # Mixtral's recipe, small
    y = moe(x)                        # x: (B, T, dim) -> (B, T, dim); replaces a block's dense MLP
    moe.router_logits, moe.load       # what the last call routed: (B*T, n_experts), (n_experts,)
    moe = MoE.from_hf(mixtral_block)  # the weights of a transformers MixtralSparseMoeBlock, same output

The pieces (built by hand in 02PT/10):
- ``route``: softmax over the experts, keep the ``top_k`` largest, renormalise them to sum to 1 (Mixtral);
- ``load_balancing_loss``: Switch Transformer's auxiliary loss ``n_experts * sum_i f_i P_i``, equal to
  ``transformers``' ``load_balancing_loss_func``; training adds ``aux_loss_coef`` times it (see ``MoE``);
- ``expert_capacity``: at most ``ceil(capacity_factor * tokens * top_k / n_experts)`` tokens per expert;
  the assignments over it are dropped, and the residual connection passes those tokens on unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.pretrain.llama import SwiGLU


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_top_k(top_k, n_experts: int) -> int:
    top_k = _positive_int("top_k", top_k)
    if top_k > n_experts:
        raise ValueError(f"top_k ({top_k}) must not exceed the number of experts ({n_experts})")
    return top_k


def _check_logits(router_logits) -> torch.Tensor:
    if not isinstance(router_logits, torch.Tensor) or router_logits.dim() != 2 or not router_logits.is_floating_point() \
            or router_logits.numel() == 0:
        got = (f"shape {tuple(router_logits.shape)} {router_logits.dtype}" if isinstance(router_logits, torch.Tensor)
               else type(router_logits).__name__)
        raise ValueError(f"router_logits must be a float tensor (tokens, n_experts), got {got}")
    return router_logits


def route(router_logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing. router_logits (N, E) -> weights (N, k) float32, each row summing to 1, and the
    chosen experts' indices (N, k) int64, most probable first."""
    probs = F.softmax(_check_logits(router_logits).float(), dim=-1)  # (N, E), in float32 as Mixtral
    weights, indices = probs.topk(_check_top_k(top_k, probs.shape[-1]), dim=-1)  # (N, k)
    return weights / weights.sum(dim=-1, keepdim=True), indices


def load_balancing_loss(router_logits: torch.Tensor | Sequence[torch.Tensor], top_k: int) -> torch.Tensor:
    """Switch Transformer's auxiliary loss (Fedus et al. 2021, eq. 4), with top-k routing as Mixtral.

    router_logits: (N, E), or one (N_l, E) tensor per layer (then the layers' tokens are pooled).
    f_i = fraction of tokens that send one of their top_k to expert i (sums to top_k),
    P_i = mean router probability of expert i (sums to 1); loss = E * sum_i f_i * P_i, a scalar.
    Perfectly balanced routing gives top_k; only P carries a gradient (f comes from a top-k choice).
    """
    if isinstance(router_logits, (list, tuple)):
        if not router_logits:
            raise ValueError("router_logits must hold at least one layer's (tokens, n_experts) tensor")
        router_logits = torch.cat([_check_logits(t) for t in router_logits])
    n_experts = _check_logits(router_logits).shape[-1]
    probs = F.softmax(router_logits.float(), dim=-1)  # (N, E)
    chosen = probs.topk(_check_top_k(top_k, n_experts), dim=-1).indices  # (N, k)
    f = F.one_hot(chosen, n_experts).sum(dim=1).float().mean(dim=0)  # (E,)
    return n_experts * (f * probs.mean(dim=0)).sum()


def expert_capacity(n_tokens: int, n_experts: int, top_k: int, capacity_factor: float) -> int:
    """The most tokens one expert processes: ceil(capacity_factor * n_tokens * top_k / n_experts).
    A factor of 1 is exactly the fair share when routing is perfectly balanced."""
    n_tokens, n_experts = _positive_int("n_tokens", n_tokens), _positive_int("n_experts", n_experts)
    top_k = _check_top_k(top_k, n_experts)
    if isinstance(capacity_factor, bool) or not isinstance(capacity_factor, numbers.Real) \
            or not math.isfinite(capacity_factor) or capacity_factor <= 0:
        raise ValueError(f"capacity_factor must be a number > 0, got {capacity_factor!r}")
    return math.ceil(capacity_factor * n_tokens * top_k / n_experts)


def within_capacity(indices: torch.Tensor, n_experts: int, capacity: int) -> torch.Tensor:
    """Which assignments fit. indices (N, k) -> keep (N, k) bool.

    Each expert takes assignments first come, first served: all first choices in token order, then all
    second choices (GShard's priority), until it holds ``capacity``; the rest are dropped.
    """
    if not isinstance(indices, torch.Tensor) or indices.dim() != 2 or indices.dtype != torch.int64:
        raise ValueError(f"indices must be an int64 tensor (tokens, top_k), got {getattr(indices, 'shape', indices)!r}")
    _positive_int("capacity", capacity)
    queue = F.one_hot(indices.t().reshape(-1), _positive_int("n_experts", n_experts))  # (k*N, E), choice-major
    slot = (queue.cumsum(dim=0) * queue).sum(dim=-1) - 1  # (k*N,) place of each assignment in its expert's queue
    return (slot < capacity).view(indices.shape[1], indices.shape[0]).t()  # (N, k)


class _AddAuxLoss(torch.autograd.Function):
    """Returns x unchanged; on backward, also sends gradient 1 into ``aux`` (x's own gradient is unchanged).
    So ``loss.backward()`` of any loss computed from x also minimises ``aux``: the trainer needs no change."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        ctx.aux_shape = aux.shape
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, grad.new_ones(ctx.aux_shape)


class MoE(nn.Module):
    """Sparse mixture-of-experts MLP: a linear router, ``n_experts`` SwiGLU experts, top-k routing.

    x (B, T, dim) -> (B, T, dim). Each token's output is sum_j w_j * expert_{e_j}(x) over its top_k
    experts e_j with renormalised router weights w_j (``route``). With ``capacity_factor`` set, each
    expert takes at most ``expert_capacity(B*T, ...)`` tokens and the others get nothing from it.
    In training mode (with gradients on) the output also carries ``aux_loss_coef * load_balancing_loss``
    into backward (``_AddAuxLoss``), so an unchanged training loop also balances the experts.
    After each call: ``router_logits`` (B*T, E), ``aux_loss`` (scalar), ``load`` (E,) assignments routed to
    each expert, ``dropped`` (E,) of them over capacity; all detached.
    """

    def __init__(self, dim: int, hidden_dim: int, n_experts: int, top_k: int = 2,
                 capacity_factor: float | None = None, aux_loss_coef: float = 0.01):
        super().__init__()
        self.dim, self.hidden_dim = _positive_int("dim", dim), _positive_int("hidden_dim", hidden_dim)
        self.n_experts = _positive_int("n_experts", n_experts)
        self.top_k = _check_top_k(top_k, self.n_experts)
        if capacity_factor is not None:
            expert_capacity(1, self.n_experts, self.top_k, capacity_factor)  # validates it
        self.capacity_factor = capacity_factor
        if isinstance(aux_loss_coef, bool) or not isinstance(aux_loss_coef, numbers.Real) \
                or not math.isfinite(aux_loss_coef) or aux_loss_coef < 0:
            raise ValueError(f"aux_loss_coef must be a number >= 0, got {aux_loss_coef!r}")
        self.aux_loss_coef = float(aux_loss_coef)
        self.gate = nn.Linear(dim, n_experts, bias=False)  # the router
        self.experts = nn.ModuleList(SwiGLU(dim, hidden_dim) for _ in range(n_experts))
        self.router_logits = self.aux_loss = self.load = self.dropped = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.dim or x.numel() == 0:
            got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"MoE takes x of shape (batch, time, {self.dim}), got {got}")
        B, T, C = x.shape
        h = x.reshape(B * T, C)  # (N, C): routing is per token
        logits = self.gate(h)  # (N, E)
        weights, indices = route(logits, self.top_k)  # (N, k), (N, k)
        keep = torch.ones_like(indices, dtype=torch.bool)
        if self.capacity_factor is not None:
            keep = within_capacity(indices, self.n_experts, expert_capacity(B * T, self.n_experts, self.top_k,
                                                                            self.capacity_factor))
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where((indices == e) & keep)  # the tokens expert e serves, and which choice it is
            if token.numel():
                y = expert(h[token]) * weights[token, slot, None]  # (n_e, C)
                out.index_add_(0, token, y.to(out.dtype))
        aux = load_balancing_loss(logits, self.top_k)
        self.router_logits, self.aux_loss = logits.detach(), aux.detach()
        self.load = torch.bincount(indices.reshape(-1), minlength=self.n_experts)
        self.dropped = torch.bincount(indices[~keep], minlength=self.n_experts)
        out = out.view(B, T, C)
        if self.training and self.aux_loss_coef > 0 and torch.is_grad_enabled():
            out = _AddAuxLoss.apply(out, self.aux_loss_coef * aux)
        return out

    def num_active_params(self) -> int:
        """Parameters one token uses: the router and top_k of the experts."""
        return self.gate.weight.numel() + self.top_k * sum(p.numel() for p in self.experts[0].parameters())

    @classmethod
    def from_hf(cls, block: nn.Module) -> MoE:
        """Copy a ``transformers`` ``MixtralSparseMoeBlock`` (5.x layout): the router ``gate.weight`` (E, d),
        and the experts fused into 3-D tensors ``gate_up_proj`` (E, 2h, d), gate rows first, and
        ``down_proj`` (E, d, h)."""
        try:
            router, gate_up, down = block.gate.weight, block.experts.gate_up_proj, block.experts.down_proj
        except AttributeError:
            raise TypeError(f"MoE.from_hf copies a transformers MixtralSparseMoeBlock, got {type(block).__name__}") from None
        n_experts, two_h, dim = gate_up.shape
        moe = cls(dim, two_h // 2, n_experts, top_k=block.top_k)
        with torch.no_grad():
            moe.gate.weight.copy_(router)
            for e, expert in enumerate(moe.experts):
                gate_w, up_w = gate_up[e].chunk(2, dim=0)  # (h, d) each
                expert.gate_proj.weight.copy_(gate_w)
                expert.up_proj.weight.copy_(up_w)
                expert.down_proj.weight.copy_(down[e])
        return moe.to(device=router.device, dtype=router.dtype)
