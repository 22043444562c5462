"""LoRA (Hu et al. 2021), written from scratch like peft: a frozen linear layer plus a trainable low-rank update.

    layer = LoRALinear(nn.Linear(512, 512), r=8, alpha=16)   # y = W x + b + (alpha / r) * B A x
    model = apply_lora(model, r=8, alpha=16, target_modules=["q_proj", "v_proj"])   # wrap, freeze the rest
    count_parameters(model)           # (trainable, all): peft's get_nb_trainable_parameters()
    save_lora("adapter.safetensors", model); load_lora("adapter.safetensors", model)   # only A and B
    load_lora_state_dict(model, lora_state_dict(other))   # the same, from memory (federated averaging)
    model = merge_lora(model)         # W + (alpha / r) * B @ A folded back into plain nn.Linear layers

The update of a (out, in) weight is ``scaling * B @ A`` with ``A`` (r, in) and ``B`` (out, r): r * (in + out)
trainable numbers instead of in * out. ``B`` starts at zero, so the wrapped model starts exactly equal to the
original; ``A`` starts random (kaiming-uniform, as nn.Linear and peft). ``scaling = alpha / r``: the
learning rate that works for one rank keeps working for another. (Scaling by ``alpha`` alone is a known
bug: the update then grows with r.) Names follow peft's (``lora_A``, ``lora_B``, ``scaling``), so the
numbers can be compared one to one with ``peft.get_peft_model``.

The base layer may also be a 4-bit ``llmfs.finetune.qlora.NF4Linear``: that is QLoRA.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save as safetensors_bytes

from llmfs.finetune.qlora import NF4Linear
from llmfs.pretrain.checkpoint import read_safetensors, unwrap, write_atomic

LORA_FORMAT = "llmfs-lora-1"


def _check_hyper(r, alpha, dropout) -> tuple[int, float, float]:
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1:
        raise ValueError(f"r (the rank) must be an integer >= 1, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return int(r), float(alpha), float(dropout)


class LoRALinear(nn.Module):
    """base(x) + dropout(x) @ A.T @ B.T * (alpha / r). x (..., in_features) -> (..., out_features).

    ``base`` (an nn.Linear or an NF4Linear) is frozen; only ``lora_A`` (r, in_features) and ``lora_B``
    (out_features, r) train. At initialisation B = 0, so the layer computes exactly what ``base`` computes.
    A and B have the base's dtype, except over a float16/bfloat16 base: then float32 (the output keeps the
    base's dtype)."""

    def __init__(self, base: nn.Linear | NF4Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, (nn.Linear, NF4Linear)):
            raise TypeError(f"base must be a torch.nn.Linear (or an NF4Linear), got {type(base).__name__}")
        self.r, self.alpha, p = _check_hyper(r, alpha, dropout)
        self.scaling = self.alpha / self.r  # NOT alpha: the update would then grow with the rank
        self.base = base.requires_grad_(False)
        self.in_features, self.out_features = base.in_features, base.out_features
        dtype, device = (base.weight.dtype, base.weight.device) if isinstance(base, nn.Linear) \
            else (base.dtype, base.packed.device)
        if dtype in (torch.float16, torch.bfloat16):
            dtype = torch.float32  # small adapters train in float32 over a half-precision base (peft does the same)
        self.lora_A = nn.Parameter(torch.empty(self.r, self.in_features, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.r, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in))
        self.dropout = nn.Dropout(p) if p > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() == 0 or x.shape[-1] != self.in_features:
            got = f"{str(x.dtype).removeprefix('torch.')} tensor of shape {tuple(x.shape)}" \
                if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a float tensor (..., {self.in_features}), got {got}")
        if x.device != self.lora_A.device:
            raise ValueError(f"x is on {x.device} but the layer on {self.lora_A.device}: move one of them")
        y = self.base(x)  # (..., out)
        update = F.linear(F.linear(self.dropout(x).to(self.lora_A.dtype), self.lora_A), self.lora_B)  # via (..., r)
        return (y + update * self.scaling).to(y.dtype)

    def delta_weight(self) -> torch.Tensor:
        """The update of the weight, (out_features, in_features): (B @ A) * scaling."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def merge(self) -> nn.Linear:
        """A plain nn.Linear with weight W + scaling * B @ A and the base's bias: the same function, no
        adapter left. An NF4 base is dequantised first (to the dtype of its original weight)."""
        with torch.no_grad():
            w = self.base.weight if isinstance(self.base, nn.Linear) else self.base.dequantized_weight()
            merged = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                               device=w.device, dtype=w.dtype)
            merged.weight.copy_(w + self.delta_weight())  # summed in the wider dtype, then rounded to W's
            if self.base.bias is not None:
                merged.bias.copy_(self.base.bias)
        return merged.requires_grad_(False).train(self.training)

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}"


def _matches(name: str, targets: Sequence[str]) -> bool:
    """peft's rule for a list of targets: the qualified name is a target or ends with "." + a target."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, NF4Linear)) and n]


def _describe_linears(model: nn.Module) -> str:
    names = _linear_names(model)
    if not names:
        return "the model has no nn.Linear layer at all"
    kinds = sorted({n.rsplit(".", 1)[-1] for n in names})
    return (f"its Linear layers end with {kinds[:12]}{' ...' if len(kinds) > 12 else ''}; "
            f"the first ones are {names[:4]} ({len(names)} in all)")


def _check_targets(target_modules) -> list[str]:
    if isinstance(target_modules, str):
        target_modules = [target_modules]
    if not isinstance(target_modules, (list, tuple, set, frozenset)) or not target_modules \
            or not all(isinstance(t, str) and t.strip() for t in target_modules):
        raise TypeError(f"target_modules must be a module name or a non-empty list of them (e.g. ['q_proj', 'v_proj']), "
                        f"got {target_modules!r:.100}")
    return sorted(target_modules)


def apply_lora(model: nn.Module, r: int, alpha: float, target_modules: str | Sequence[str],
               dropout: float = 0.0) -> nn.Module:
    """Wrap, in place, every nn.Linear whose qualified name is one of ``target_modules`` or ends with
    "." + one of them (``"q_proj"`` matches ``model.layers.0.self_attn.q_proj``) in a ``LoRALinear``; freeze
    every other parameter. Returns ``model``, like ``peft.get_peft_model(model, LoraConfig(r=r,
    lora_alpha=alpha, target_modules=..., lora_dropout=dropout))`` without the wrapper class. (A single string
    is one name here; peft reads a string as a regular expression.)"""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    r, alpha, dropout = _check_hyper(r, alpha, dropout)
    targets = _check_targets(target_modules)
    found = [(n, m) for n, m in unwrap(model).named_modules() if n and _matches(n, targets)]
    if not found:
        raise ValueError(f"no module of the model is named {targets} (or ends with one of them): {_describe_linears(model)}")
    for name, module in found:
        if isinstance(module, LoRALinear):
            raise ValueError(f"{name} already has a LoRA adapter: apply_lora once per model")
        if not isinstance(module, (nn.Linear, NF4Linear)):
            raise ValueError(f"target {name} is a {type(module).__name__}, not an nn.Linear: {_describe_linears(model)}")
    model.requires_grad_(False)
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        lora = LoRALinear(module, r, alpha, dropout).train(module.training)
        setattr(unwrap(model).get_submodule(parent_name), child, lora)
    return model


def _lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = [(n, m) for n, m in unwrap(model).named_modules() if isinstance(m, LoRALinear)]
    if not layers:
        raise ValueError("the model has no LoRALinear layer: call apply_lora(model, ...) first")
    return layers


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its ``merge()``: plain nn.Linear layers that compute the same function,
    at no extra cost (peft's ``merge_and_unload``). Returns the model (the merged layer if ``model`` is one)."""
    for name, layer in _lora_layers(model):
        if not name:
            return layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(unwrap(model).get_submodule(parent_name), child, layer.merge())
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, all) numbers of parameters, each shared tensor counted once, as peft's
    ``get_nb_trainable_parameters``; a 4-bit NF4Linear weight counts its (out * in) weights, as peft counts
    bitsandbytes' packed ones."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    four_bit = sum(math.prod(m.shape) for m in model.modules() if isinstance(m, NF4Linear))
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params) + four_bit


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters: ``{"<layer>.lora_A": (r, in), "<layer>.lora_B": (out, r)}`` for every LoRALinear."""
    out = {}
    for name, layer in _lora_layers(model):
        prefix = f"{name}." if name else ""
        out[prefix + "lora_A"], out[prefix + "lora_B"] = layer.lora_A.detach(), layer.lora_B.detach()
    return out


def save_lora(path: str | os.PathLike, model: nn.Module) -> Path:
    """Write the adapters (``lora_state_dict``) and each layer's r and alpha to a safetensors file, atomically.
    A few hundred kB instead of the whole model."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    tensors = {k: v.contiguous().cpu() for k, v in lora_state_dict(model).items()}
    config = {name: {"r": layer.r, "alpha": layer.alpha} for name, layer in _lora_layers(model)}
    metadata = {"format": LORA_FORMAT, "layers": json.dumps(config)}
    return write_atomic(Path(path), safetensors_bytes(tensors, metadata=metadata))


def load_lora(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Copy the adapters saved by ``save_lora`` into ``model``, which must already carry the same LoRA layers
    (``apply_lora`` with the same targets, r and alpha). Anything that does not fit raises ValueError."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    layers = dict(_lora_layers(model))
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no LoRA adapter file at {path}")
    tensors, meta = read_safetensors(path)
    if meta.get("format") != LORA_FORMAT:
        raise ValueError(f"{path} is not an llmfs LoRA adapter file (format {meta.get('format')!r})")
    saved = json.loads(meta["layers"])
    if set(saved) != set(layers):
        missing, extra = sorted(set(layers) - set(saved)), sorted(set(saved) - set(layers))
        raise ValueError(f"{path} does not fit this model: layers without an adapter in the file {missing[:4]}, "
                         f"adapters for layers the model lacks {extra[:4]}")
    for name, layer in layers.items():
        if (saved[name]["r"], saved[name]["alpha"]) != (layer.r, layer.alpha):
            raise ValueError(f"{name}: the file has r={saved[name]['r']}, alpha={saved[name]['alpha']:g}, "
                             f"the model r={layer.r}, alpha={layer.alpha:g}")
    return load_lora_state_dict(model, tensors, source=str(path))


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state") -> nn.Module:
    """Copy adapters ``{"<layer>.lora_A": (r, in), "<layer>.lora_B": (out, r)}`` (``lora_state_dict``'s form)
    into the model's LoRA layers; every layer's A and B must be there with its shape. Checks everything
    before changing anything: a ValueError leaves the model as it was."""
    layers = dict(_lora_layers(model))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{source} must be a dict {{name: tensor}} made by lora_state_dict, got {type(state).__name__}")
    expected = {f"{name}.{key}" if name else key for name in layers for key in ("lora_A", "lora_B")}
    if extra := sorted(set(state) - expected):
        raise ValueError(f"{source} does not fit this model: adapters for layers the model lacks {extra[:4]}")
    for name, layer in layers.items():
        prefix = f"{name}." if name else ""
        for key in ("lora_A", "lora_B"):
            value, param = state.get(prefix + key), getattr(layer, key)
            if value is None or value.shape != param.shape or not value.is_floating_point():
                got = "nothing" if value is None else f"{value.dtype} {tuple(value.shape)}"
                raise ValueError(f"{source} does not fit this model: {prefix}{key} is {tuple(param.shape)}, it has {got}")
    with torch.no_grad():
        for name, layer in layers.items():
            prefix = f"{name}." if name else ""
            layer.lora_A.copy_(state[prefix + "lora_A"])
            layer.lora_B.copy_(state[prefix + "lora_B"])
    return model
