"""The course's trainer: nanoGPT's train.py as a module and as a script.

    python -m llmfs.train --data_dir kjv-char --max_iters 2000 --out_dir out/kjv-char
    torchrun --standalone --nproc_per_node=2 -m llmfs.train --data_dir kjv-char --device cpu ...

    from llmfs.train import TrainConfig, train
    result = train(TrainConfig(data_dir="kjv-char", max_iters=200))   # result.model, result.history

The pieces, each small enough to read in one go and each built by hand in 06_pretraining.ipynb:
- data: ``prepare_data`` writes token ids to ``train.bin`` / ``val.bin`` (uint16, read back with
  ``np.memmap``), ``get_batch`` cuts random (x, y) windows from them;
- ``configure_optimizer``: AdamW with weight decay on matrices only (the "decay groups");
- ``get_lr``: linear warmup, then cosine decay to ``min_lr``, over steps or over a time budget;
- ``train``: gradient accumulation, clipping, mixed precision on GPU, periodic evaluation, atomic
  safetensors checkpoints that resume bitwise, and DistributedDataParallel under ``torchrun``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from llmfs.checkpoint import load_checkpoint, save_checkpoint, unwrap
from llmfs.config import progress
from llmfs.gpt import GPT, GPTConfig

# ------------------------------------------------------------------------------------------------ data


@dataclass
class CharTokenizer:
    """One token per character: ``itos[i]`` is the character of id i."""

    itos: list[str]

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    def __post_init__(self):
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def prepare_data(text: str, out_dir: str | os.PathLike, encode: Callable[[str], list[int]], vocab_size: int,
                 val_fraction: float = 0.1, meta: dict | None = None) -> Path:
    """Tokenize ``text`` and write the first (1 - val_fraction) to ``train.bin``, the rest to ``val.bin``.

    Token ids are stored as uint16 (2 bytes each; vocabularies up to 65,536), the format nanoGPT uses;
    ``meta.json`` records ``vocab_size`` and anything in ``meta`` (e.g. a character table).
    """
    if vocab_size > 2**16:
        raise ValueError(f"vocab_size {vocab_size} does not fit in uint16")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = int(len(text) * (1 - val_fraction))  # split the text, not the tokens: the same cut for any tokenizer
    for split, part in (("train", text[:n]), ("val", text[n:])):
        np.array(encode(part), dtype=np.uint16).tofile(out / f"{split}.bin")
    (out / "meta.json").write_text(json.dumps({"vocab_size": vocab_size, **(meta or {})}))
    return out


def prepare_kjv(tokenizer: str = "char", root: str | os.PathLike | None = None) -> Path:
    """The King James text as token files, once: ``<root>/kjv-char`` or ``<root>/kjv-gpt2``.

    root defaults to ``<llmfs cache>/data``. Returns the folder.
    """
    from llmfs.assets import cache_dir
    from llmfs.data import load_kjv

    out = Path(root or cache_dir() / "data") / f"kjv-{tokenizer}"
    if (out / "meta.json").is_file():
        return out
    text = load_kjv()
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")  # write aside, then rename: readers never see half
    if tokenizer == "char":
        tok = CharTokenizer.from_text(text)
        prepare_data(text, tmp, tok.encode, tok.vocab_size, meta={"tokenizer": "char", "itos": tok.itos})
    elif tokenizer == "gpt2":
        from llmfs.tokenizers import gpt2_tokenizer  # 04_tokenization's BPE: the same ids as tiktoken's gpt2

        prepare_data(text, tmp, gpt2_tokenizer().encode, 50257, meta={"tokenizer": "gpt2"})
    else:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: 'char' or 'gpt2'")
    try:
        os.rename(tmp, out)
    except OSError:  # another process prepared it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_data_dir(data_dir: str) -> Path:
    """A folder with train.bin / val.bin / meta.json, or the names 'kjv-char' / 'kjv-gpt2' (prepared once)."""
    if data_dir in ("kjv-char", "kjv-gpt2") and not Path(data_dir).is_dir():
        return prepare_kjv(data_dir.split("-")[1])
    return Path(data_dir)


def read_meta(data_dir: str | os.PathLike) -> dict:
    return json.loads((resolve_data_dir(str(data_dir)) / "meta.json").read_text())


def load_tokens(data_dir: str | os.PathLike, split: str) -> np.memmap:
    """The token ids of ``split`` ('train' or 'val') as a read-only memmap: nothing is read until used."""
    return np.memmap(resolve_data_dir(str(data_dir)) / f"{split}.bin", dtype=np.uint16, mode="r")


def get_batch(data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: x = data[i : i+T], y = data[i+1 : i+T+1]; both (B, T) int64."""
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator).tolist()
    x = torch.from_numpy(np.stack([data[i:i + block_size] for i in ix]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size] for i in ix]).astype(np.int64))
    if device.startswith("cuda"):  # pinned memory + non_blocking: the copy overlaps the GPU's work
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


# ------------------------------------------------------------------------------------------------ config


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults are nanoGPT's README "baby" CPU run on the course text."""

    # data
    data_dir: str = "kjv-char"  # a prepared folder, or 'kjv-char' / 'kjv-gpt2'
    # model (ignored when ``train`` is given a model)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    gelu: str = "tanh"  # GELU's approximation: 'tanh' (GPT-2's) or 'none' (exact erf; faster on CPU)
    # optimisation; tokens per step = batch_size * block_size * grad_accum * world_size
    batch_size: int = 12  # sequences per micro-step, per process
    grad_accum: int = 1  # micro-steps whose gradients are summed before one optimizer step
    max_iters: int = 2000  # optimizer steps
    stop_iter: int = 0  # > 0: stop after this step as if interrupted (the schedule still runs to max_iters)
    time_budget: float = 0.0  # seconds; > 0: the cosine runs over wall-clock time and training stops at it
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0: off
    # evaluation and logging
    eval_interval: int = 250  # steps between evaluations; 0: only at the end
    eval_iters: int = 20  # batches per periodic evaluation
    final_eval_iters: int = 200  # batches of the final evaluation (nanoGPT's eval_iters)
    eval_batch_size: int = 0  # 0: batch_size
    log_interval: int = 10  # steps between progress-bar updates
    # checkpoints
    out_dir: str = ""  # '' : no files written
    ckpt_interval: int = 0  # steps between checkpoints (0: only at the end)
    resume: bool = False  # continue from out_dir/ckpt.safetensors when it exists
    # system
    device: str = "auto"  # 'auto', 'cpu', 'cuda', 'mps'
    dtype: str = "float32"  # 'bfloat16' / 'float16': autocast (mixed precision)
    compile: bool = False  # torch.compile the model
    seed: int = 0


@dataclass
class TrainResult:
    model: nn.Module
    history: dict = field(default_factory=dict)  # iter, train_loss, lr, eval_iter, val_loss, time ...

    @property
    def val_loss(self) -> float:
        """The last (final) validation loss."""
        return self.history["val_loss"][-1]


# ------------------------------------------------------------------------------------------------ optimisation


def configure_optimizer(model: nn.Module, weight_decay: float, lr: float, betas: tuple[float, float],
                        device_type: str = "cpu") -> torch.optim.AdamW:
    """AdamW with two groups: matrices and embeddings (dim >= 2) are decayed; biases and LayerNorm gains
    are not (shrinking them toward 0 has no regularising meaning). Fused kernel on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() lists tied weights once
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device_type == "cuda")


def get_lr(it: int, cfg: TrainConfig, progress: float | None = None) -> float:
    """Linear warmup over ``warmup_iters`` steps, then a cosine from ``lr`` down to ``min_lr``.

    ``progress`` in [0, 1] is how far the decay has gone; by default counted in steps as nanoGPT does,
    (it - warmup) / (max_iters - warmup). A time-budgeted run passes elapsed / time_budget instead.
    """
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / (cfg.warmup_iters + 1)
    if progress is None:
        progress = (it - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    progress = min(max(progress, 0.0), 1.0)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy. logits (B, T, V), targets (B, T) -> scalar (in float32)."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


@torch.no_grad()
def estimate_loss(model: nn.Module, data: np.ndarray, batch_size: int, block_size: int, iters: int,
                  device: str = "cpu", autocast=None, seed: int = 1234) -> float:
    """Mean loss over ``iters`` random batches. A generator of its own, seeded the same at every call,
    picks the batches: every evaluation sees the same text, and training's random stream is untouched."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(iters):
        x, y = get_batch(data, batch_size, block_size, g, device)
        with autocast or nullcontext():
            total += lm_loss(model(x), y).item()
    model.train(was_training)
    return total / iters


def autocast_context(device_type: str, dtype: str):
    """Mixed precision: matmuls in bf16/fp16 where it is safe, float32 elsewhere; a no-op for float32."""
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype={"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype])


# ------------------------------------------------------------------------------------------------ the loop


def _distributed(cfg: TrainConfig) -> tuple[int, int, str]:
    """(rank, world_size, device). Under torchrun (RANK set) joins the process group: NCCL on GPUs,
    gloo on CPUs."""
    from llmfs.config import device as best_device

    if "RANK" not in os.environ:
        return 0, 1, best_device() if cfg.device == "auto" else cfg.device
    use_cuda = torch.cuda.is_available() and cfg.device in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    return rank, dist.get_world_size(), f"cuda:{os.environ['LOCAL_RANK']}" if use_cuda else "cpu"


def train(cfg: TrainConfig, model: nn.Module | None = None, quiet: bool = False) -> TrainResult:
    """Train ``model`` (default: a GPT sized by ``cfg``) on ``cfg.data_dir``; see the module docstring."""
    rank, world, device = _distributed(cfg)
    ddp, master = world > 1, rank == 0
    device_type = device.split(":")[0]
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    meta = read_meta(cfg.data_dir)
    if model is None:
        model = GPT(GPTConfig(vocab_size=meta["vocab_size"], block_size=cfg.block_size, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, gelu=cfg.gelu))
    model.to(device)
    optimizer = configure_optimizer(model, cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2), device_type)
    torch.manual_seed(cfg.seed + rank)  # dropout differs between processes
    data_gen = torch.Generator().manual_seed(cfg.seed + rank)  # so do the batches
    train_data, val_data = load_tokens(cfg.data_dir, "train"), load_tokens(cfg.data_dir, "val")

    history = {k: [] for k in ("iter", "train_loss", "lr", "eval_iter", "val_loss", "eval_time")}
    step, elapsed_before = 0, 0.0
    ckpt = Path(cfg.out_dir) / "ckpt.safetensors" if cfg.out_dir else None
    if cfg.resume and ckpt is not None and ckpt.is_file():
        state = load_checkpoint(ckpt, model, optimizer, generators={"data": data_gen} if master else None)
        step, history, elapsed_before = state["step"], state["extra"]["history"], state["extra"]["elapsed"]
        if not master:  # the checkpoint holds rank 0's generator; the others restart their own stream
            data_gen.manual_seed(cfg.seed + rank + 1_000_003 * step)

    raw_model = model
    if cfg.compile:
        model = torch.compile(model)
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[int(os.environ["LOCAL_RANK"])] if device_type == "cuda" else None)
    autocast = autocast_context(device_type, cfg.dtype)
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.dtype == "float16")  # fp16 needs loss scaling
    eval_bs = cfg.eval_batch_size or cfg.batch_size

    def evaluate(iters: int) -> None:
        history["eval_iter"].append(step)
        history["val_loss"].append(estimate_loss(raw_model, val_data, eval_bs, cfg.block_size, iters, device, autocast))
        history["eval_time"].append(elapsed())

    pending: list[torch.Tensor] = []  # losses not yet copied to the host (.item() would stall the GPU)

    def flush() -> None:
        history["train_loss"] += torch.stack(pending).tolist() if pending else []
        pending.clear()

    def save() -> None:
        flush()
        if ckpt is not None and master:
            save_checkpoint(ckpt, raw_model, optimizer, step, generators={"data": data_gen},
                            extra={"history": history, "elapsed": elapsed(), "world_size": world,
                                   "config": dataclasses.asdict(cfg)})

    t0 = time.perf_counter() - elapsed_before

    def elapsed() -> float:
        return time.perf_counter() - t0

    def out_of_time() -> bool:
        if not cfg.time_budget:
            return False
        over = torch.tensor([float(elapsed() >= cfg.time_budget)])
        if ddp:  # every process must stop at the same step, so rank 0 decides
            dist.broadcast(over, src=0)
        return bool(over.item())

    bar = progress(total=None if cfg.time_budget else cfg.max_iters, initial=step,
                   **({"disable": True} if quiet or not master else {}))
    model.train()
    last = min(cfg.max_iters, cfg.stop_iter or cfg.max_iters)
    while step < last and not out_of_time():
        frac = elapsed() / cfg.time_budget if cfg.time_budget else None
        lr = get_lr(step, cfg, frac)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if master and cfg.eval_interval and step % cfg.eval_interval == 0 and step > 0:
            evaluate(cfg.eval_iters)

        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            x, y = get_batch(train_data, cfg.batch_size, cfg.block_size, data_gen, device)
            # DDP averages gradients across processes on backward; skip that until the last micro-step
            sync = nullcontext() if not ddp or micro == cfg.grad_accum - 1 else model.no_sync()
            with sync:
                with autocast:
                    loss = lm_loss(model(x), y) / cfg.grad_accum  # summed over micro-steps = the mean
                scaler.scale(loss).backward()
            loss_sum += loss.detach()
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

        history["iter"].append(step)
        history["lr"].append(lr)
        pending.append(loss_sum)
        step += 1
        if step % cfg.log_interval == 0:
            flush()
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", lr=f"{lr:.2e}")
        bar.update(1)
        if cfg.ckpt_interval and step % cfg.ckpt_interval == 0:
            save()
    bar.close()
    flush()
    history["train_time"] = elapsed()
    if master:
        evaluate(cfg.final_eval_iters)
        save()
        if cfg.out_dir:
            Path(cfg.out_dir, "history.json").write_text(json.dumps(history))
    if ddp:
        dist.barrier()
    return TrainResult(unwrap(raw_model), history)


# ------------------------------------------------------------------------------------------------ script


def _parser() -> argparse.ArgumentParser:
    """One ``--flag`` per TrainConfig field, with its type, its default and its comment as help."""
    import inspect
    import re

    comments = dict(re.findall(r"^\s+(\w+): \w+ = [^#\n]*#\s*(.*)$", inspect.getsource(TrainConfig), re.M))
    p = argparse.ArgumentParser(prog="python -m llmfs.train", description=__doc__.split("\n")[0])
    for f in dataclasses.fields(TrainConfig):
        kind = type(f.default)
        conv = (lambda s: s.lower() in ("1", "true", "yes", "on")) if kind is bool else kind
        p.add_argument(f"--{f.name}", type=conv, default=f.default, metavar=kind.__name__.upper(),
                       help=f"{comments.get(f.name, '')} (default: %(default)s)".lstrip())
    return p


def main(argv: list[str] | None = None) -> int:
    cfg = TrainConfig(**vars(_parser().parse_args(argv)))
    result = train(cfg)
    if int(os.environ.get("RANK", 0)) == 0:
        h = result.history
        print(f"steps {h['iter'][-1] + 1}  train loss {h['train_loss'][-1]:.4f}  "
              f"val loss {result.val_loss:.4f}  train time {h['train_time']:.1f} s")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
