"""Direct Preference Optimization (Rafailov et al. 2023): learn from pairs "this answer, not that one".

    pc, pr = sequence_logps(policy(chosen_ids), chosen_labels), sequence_logps(policy(rejected_ids), rejected_labels)
    rc, rr = sequence_logps(ref(chosen_ids), chosen_labels), sequence_logps(ref(rejected_ids), rejected_labels)  # no grad
    losses, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, beta=0.1)   # each (batch,)
    losses.mean().backward()

The loss of one pair is ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))``: it falls as the policy raises the
chosen answer's log-probability, relative to a frozen reference model, more than the rejected one's. At the
start (policy = reference) it is ln 2 ~ 0.693. ``beta * (policy - reference)`` is the "implicit reward" of
an answer, which trl logs as ``rewards/chosen`` and ``rewards/rejected``; their difference is the margin.
Equal to the sigmoid loss of trl's ``DPOTrainer`` (1.16).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F


def _describe(t) -> str:
    if isinstance(t, torch.Tensor):
        return f"{str(t.dtype).removeprefix('torch.')} tensor of shape {tuple(t.shape)}"
    return type(t).__name__


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO's sigmoid loss per pair. Each input: (batch,) summed log-probabilities of the response tokens
    (``sequence_logps``). Returns (losses, chosen_rewards, rejected_rewards), each (batch,); the rewards
    ``beta * (policy - reference)`` are detached (they are for logging, as in trl).

    ``F.logsigmoid`` keeps the loss finite for any finite margin: ``log(sigmoid(-1e4))`` would be log(0) = -inf."""
    names = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
    tensors = (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    for name, t in zip(names, tensors):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != 1 or t.numel() == 0:
            raise ValueError(f"{name} must be a (batch,) float tensor of summed log-probabilities, got {_describe(t)}")
    if len({t.shape for t in tensors}) > 1 or len({t.device for t in tensors}) > 1:
        got = ", ".join(f"{n} {tuple(t.shape)} on {t.device}" for n, t in zip(names, tensors))
        raise ValueError(f"the four log-probability tensors must have one shape and one device, got {got}")
    if tensors[0].device.type == "cpu" and not all(torch.isfinite(t).all() for t in tensors):
        raise ValueError("the log-probabilities hold NaN or infinite values")
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")

    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,) how much more likely than the reference
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))  # (B,) ln 2 when the two are equal
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Sum of log p(labels[t] | tokens < t) over the response tokens, per sequence.

    logits (B, T, V) from a causal LM run on the whole sequence, labels (B, T) int64: the input ids with the
    prompt and the padding set to ``ignore_index``. Shifted as causal LMs do: position t's logits predict
    token t + 1, so ``logits[:, :-1]`` meet ``labels[:, 1:]``. Computed in float32. Returns (B,)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() != 3 \
            or logits.shape[1] < 2 or logits.shape[2] < 1:
        raise ValueError(f"logits must be a (batch, time >= 2, vocab) float tensor, got {_describe(logits)}")
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32) \
            or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"labels must be a (batch, time) = {tuple(logits.shape[:2])} int64 tensor, got {_describe(labels)}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    if labels.device != logits.device:
        raise ValueError(f"labels are on {labels.device} but logits on {logits.device}: move one of them")
    labels = labels[:, 1:]  # (B, T-1) the token each position has to predict
    mask = labels != ignore_index  # (B, T-1) response tokens only
    vocab = logits.shape[-1]
    if labels.device.type == "cpu" and mask.any() and (labels[mask].min() < 0 or labels[mask].max() >= vocab):
        raise ValueError(f"labels must be token ids in 0..{vocab - 1} or ignore_index={ignore_index}, "
                         f"got {int(labels[mask].min())}..{int(labels[mask].max())}")
    logits = logits[:, :-1].float()  # (B, T-1, V)
    picked = logits.gather(-1, labels.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)  # (B, T-1) the label's logit
    per_token = picked - logits.logsumexp(dim=-1)  # (B, T-1) log-softmax at the label
    return torch.where(mask, per_token, 0.0).sum(dim=-1)  # (B,)
