"""Federated fine-tuning: clients train LoRA adapters on their own data, a server averages them (FedAvg).

    parts = split_by_family(examples, n_clients=4, families_per_client=3)   # non-IID: each client, few families
    parts = split_iid(examples, n_clients=4)                                # IID: a shuffled share each
    global_state = fedavg([client_state_1, client_state_2], weights=[120, 80])  # weighted mean, tensor by tensor
    message_bytes(lora.lora_state_dict(model))                              # what one upload costs

FedAvg (McMahan et al. 2017): each round the server sends the current adapters to every client, each client
trains them for some local steps on its own examples (which never leave it), sends them back, and the server
replaces the adapters by the mean of the clients', weighted by how many examples each has. Only the adapters
travel: with LoRA, a few MiB per message instead of the whole model. When the clients' data differ
(non-IID: each one sees only some task families), their local updates pull in different directions and
the average learns more slowly than training on all the data in one place (centralised).
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Mapping, Sequence

import torch
from safetensors.torch import save as safetensors_bytes


def _check_clients(examples, n_clients) -> None:
    if isinstance(examples, (str, dict)) or not isinstance(examples, Sequence) or not examples:
        raise ValueError(f"examples must be a non-empty list of task examples, got {type(examples).__name__}")
    if isinstance(n_clients, bool) or not isinstance(n_clients, numbers.Integral) or not 1 <= n_clients <= len(examples):
        raise ValueError(f"n_clients must be an integer in 1..{len(examples)} (the number of examples), got {n_clients!r}")


def split_iid(examples: Sequence[dict], n_clients: int, seed: int = 0) -> list[list[dict]]:
    """Shuffle the examples and deal them out: n_clients lists of (nearly) equal size, each a sample of all."""
    _check_clients(examples, n_clients)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [[examples[i] for i in order[c::n_clients]] for c in range(n_clients)]


def split_by_family(examples: Sequence[dict], n_clients: int, families_per_client: int, seed: int = 0) -> list[list[dict]]:
    """Non-IID: each client holds the examples of only ``families_per_client`` task families.

    The families are shuffled and dealt round-robin, so each family goes to ``n_clients * families_per_client
    / n_families`` clients (at least one: every family is somewhere); the examples of a family are shared
    out between the clients that hold it. Needs ``n_clients * families_per_client >= n_families``."""
    _check_clients(examples, n_clients)
    if not all(isinstance(e, dict) and isinstance(e.get("family"), str) for e in examples):
        raise ValueError("every example must be a dict with a 'family' (made by llmfs.finetune.tasks.make_tasks)")
    families = sorted({e["family"] for e in examples})
    if isinstance(families_per_client, bool) or not isinstance(families_per_client, numbers.Integral) \
            or not 1 <= families_per_client <= len(families) or n_clients * families_per_client < len(families):
        raise ValueError(f"families_per_client must be an integer in 1..{len(families)} with n_clients * "
                         f"families_per_client >= {len(families)} (every family held by a client), got {families_per_client!r}")
    rng = random.Random(seed)
    rng.shuffle(families)
    holders: dict[str, list[int]] = {f: [] for f in families}
    for slot in range(n_clients * families_per_client):  # deal the families round-robin, client after client
        client, family = slot // families_per_client, families[slot % len(families)]
        if client not in holders[family]:
            holders[family].append(client)
    parts: list[list[dict]] = [[] for _ in range(n_clients)]
    seen: dict[str, int] = {f: 0 for f in families}
    for e in examples:  # the k-th example of a family goes to the family's (k mod holders)-th client
        family = e["family"]
        parts[holders[family][seen[family] % len(holders[family])]].append(e)
        seen[family] += 1
    return parts


def fedavg(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """The weighted mean, tensor by tensor, of the clients' state dicts (same keys, shapes and dtypes).
    ``weights`` (one per client, >= 0, not all 0; None: equal) are normalised to sum to 1; usually the
    clients' numbers of examples. The mean is taken in float32 and returned in each tensor's dtype."""
    if isinstance(states, Mapping) or not isinstance(states, Sequence) or not states \
            or not all(isinstance(s, Mapping) and s for s in states):
        raise ValueError("states must be a non-empty list of non-empty state dicts {name: tensor}")
    keys = list(states[0])
    for i, s in enumerate(states):
        if list(s) != keys:
            raise ValueError(f"state {i} has other keys than state 0: {sorted(set(s) ^ set(keys))[:4]}")
        for k in keys:
            t, t0 = s[k], states[0][k]
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.shape != t0.shape or t.dtype != t0.dtype:
                raise ValueError(f"state {i}[{k!r}] must be a float tensor like state 0's {tuple(t0.shape)} "
                                 f"{t0.dtype}, got {t!r:.60}")
    if weights is None:
        weights = [1.0] * len(states)
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != len(states) or not all(
            isinstance(w, numbers.Real) and not isinstance(w, bool) and w >= 0 and w != float("inf") for w in weights) \
            or sum(weights) <= 0:
        raise ValueError(f"weights must be {len(states)} finite numbers >= 0, not all 0, got {weights!r:.80}")
    total = float(sum(weights))
    return {k: sum(s[k].float() * (w / total) for s, w in zip(states, weights)).to(states[0][k].dtype) for k in keys}


def message_bytes(state: Mapping[str, torch.Tensor]) -> int:
    """The size in bytes of ``state`` written as one safetensors message (tensors + header): one upload."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"state must be a dict {{name: tensor}}, got {type(state).__name__}")
    return len(safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in state.items()}))
