"""Training checkpoints: one safetensors file with everything needed to resume, written atomically.

    save_checkpoint("out/ckpt.safetensors", model, optimizer, step=500, generators={"data": g})
    state = load_checkpoint("out/ckpt.safetensors", model, optimizer, generators={"data": g})
    state["step"]  # -> 500; the run continues exactly where it stopped

What goes in (tensors under a prefix, everything else as JSON in the file's text metadata):
- ``model/<name>``    every parameter and buffer; a tensor shared by two names (tied weights) is stored
                      once and the other name recorded as an alias. With ``trainable_only=True`` only
                      the parameters that require grad (a fine-tuning run's adapters: megabytes, not
                      the frozen model's hundreds), which ``load_checkpoint`` loads into a model that has
                      the rest already;
- ``optim/<i>/<key>`` AdamW's moments ``exp_avg``, ``exp_avg_sq`` and ``step`` of parameter ``i``;
                      the param groups (lr, betas, weight decay...) go in the metadata;
- ``rng/...``         the random states of torch (CPU and CUDA), NumPy, Python, and of any named
                      ``torch.Generator`` (the batch sampler's), so that dropout and batches repeat.

"Atomically" means a crash never leaves a half-written checkpoint: the bytes go to a temporary file
in the same folder, are flushed to disk, and ``os.replace`` swaps it in (a rename is atomic).
"""

from __future__ import annotations

import json
import numbers
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside ``DistributedDataParallel`` (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def _check(path, model, optimizer, generators) -> Path:
    """``path`` as a Path, after a TypeError for any argument of the wrong kind."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be None or a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if generators is not None and (not isinstance(generators, dict) or not all(
            isinstance(k, str) and isinstance(g, torch.Generator) for k, g in generators.items())):
        raise TypeError(f"generators must be None or a dict of name -> torch.Generator, got {generators!r:.80}")
    return Path(path)


def _model_tensors(model: torch.nn.Module, trainable_only: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """State dict with every shared tensor kept once: (tensors, {alias: name it shares storage with}).
    ``trainable_only``: the parameters that require grad, each once (``named_parameters`` skips aliases)."""
    if trainable_only:
        return {f"model/{name}": p.detach().contiguous().cpu()
                for name, p in unwrap(model).named_parameters() if p.requires_grad}, {}
    tensors, aliases, seen = {}, {}, {}
    for name, t in unwrap(model).state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
            tensors[f"model/{name}"] = t.detach().contiguous().cpu()
    return tensors, aliases


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for i, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim/{i}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(i), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _rng_tensors(generators: dict[str, torch.Generator]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    for name, g in generators.items():
        tensors[f"rng/gen/{name}"] = g.get_state()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    meta = {"python": random.getstate(), "numpy": [kind, keys.tolist(), pos, has_gauss, gauss]}
    return tensors, meta


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    generators: dict[str, torch.Generator] | None = None,
    extra: dict | None = None,
    trainable_only: bool = False,
) -> Path:
    """Write model, optimizer, ``step``, every RNG state and ``extra`` (JSON-able) to ``path``, atomically.
    ``trainable_only``: of the model, only the parameters that require grad."""
    path = _check(path, model, optimizer, generators)
    if not isinstance(trainable_only, bool):
        raise TypeError(f"trainable_only must be True or False, got {trainable_only!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be None or a dict (saved as JSON), got {type(extra).__name__}")
    tensors, aliases = _model_tensors(model, trainable_only)
    if trainable_only and not tensors:
        raise ValueError("trainable_only=True, but no parameter of the model requires grad: nothing to save")
    optim_meta = None
    if optimizer is not None:
        t, optim_meta = _optimizer_tensors(optimizer)
        tensors.update(t)
    t, rng_meta = _rng_tensors(generators or {})
    tensors.update(t)
    metadata = {
        "format": "llmfs-checkpoint-1",
        "step": str(int(step)),
        "aliases": json.dumps(aliases),
        "optimizer": json.dumps(optim_meta),
        "rng": json.dumps(rng_meta),
        "extra": json.dumps(extra or {}),
        "trainable_only": json.dumps(trainable_only),
    }
    return write_atomic(path, safetensors_bytes(tensors, metadata=metadata))


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that no reader ever sees half a file: a temporary file in the same
    folder, flushed to disk, then ``os.replace`` (a rename is atomic). Creates the folder if needed."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(every tensor, on the CPU; the text metadata) of a safetensors file. A file that is not one
    (corrupt, cut short, another format) raises ValueError."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file (corrupt or cut short?): {err}") from None


def _as_tuples(group: dict) -> dict:
    """JSON turned the tuple ``betas`` into a list; give the optimizer its tuple back."""
    return {k: tuple(v) if k == "betas" else v for k, v in group.items()}


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    generators: dict[str, torch.Generator] | None = None,
    restore_rng: bool = True,
) -> dict:
    """Load what ``save_checkpoint`` wrote into ``model`` (and ``optimizer``, ``generators``, the global
    RNGs). Returns ``{"step": int, "extra": dict}``. A ``trainable_only`` checkpoint fills only the
    tensors it holds, each of which must exist in ``model`` with its shape.

    A missing file raises ``FileNotFoundError``; a file that is not an llmfs checkpoint (corrupt,
    truncated, another format) or whose tensors do not fit ``model`` raises ``ValueError``."""
    path = _check(path, model, optimizer, generators)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "llmfs-checkpoint-1":
        raise ValueError(f"{path} is not an llmfs checkpoint")
    missing = [f"rng/gen/{name}" for name in generators or {} if f"rng/gen/{name}" not in tensors]
    if missing:
        raise ValueError(f"{path} holds no state for the generators {missing}")

    state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    for alias, name in json.loads(meta["aliases"]).items():
        state[alias] = state[name]
    partial = json.loads(meta.get("trainable_only", "false"))
    try:
        result = unwrap(model).load_state_dict(state, strict=not partial)
    except RuntimeError as err:  # missing, unexpected or differently shaped tensors
        raise ValueError(f"{path} does not fit this model: {err}") from None
    if partial and result.unexpected_keys:
        raise ValueError(f"{path} does not fit this model: it has no tensors named {result.unexpected_keys[:5]}")

    if optimizer is not None:
        optim_meta = json.loads(meta["optimizer"])
        if optim_meta is None:
            raise ValueError(f"{path} holds no optimizer state")
        per_param: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim/"):
                _, i, key = k.split("/", 2)
                per_param.setdefault(int(i), {})[key] = v
        for i, scalars in optim_meta["scalars"].items():
            per_param.setdefault(int(i), {}).update(scalars)
        optimizer.load_state_dict({"state": per_param,
                                   "param_groups": [_as_tuples(g) for g in optim_meta["param_groups"]]})

    if restore_rng:
        rng = json.loads(meta["rng"])
        torch.set_rng_state(tensors["rng/torch"])
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)
        v, internal, gauss = rng["python"]
        random.setstate((v, tuple(internal), gauss))
        kind, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    for name, g in (generators or {}).items():
        g.set_state(tensors[f"rng/gen/{name}"])
    return {"step": int(meta["step"]), "extra": json.loads(meta["extra"])}
