"""The course's trainer: nanoGPT's train.py as a module and as a script.

    python -m llmfs.pretrain.train --data_dir kjv-char --max_iters 2000 --out_dir out/kjv-char
    torchrun --standalone --nproc_per_node=2 -m llmfs.pretrain.train --data_dir kjv-char --device cpu ...

    from llmfs.pretrain.train import TrainConfig, train
    result = train(TrainConfig(data_dir="kjv-char", max_iters=200))   # result.model, result.history

The pieces, each small enough to read in one go and each built by hand in 06_pretraining.ipynb:
- data (``llmfs.pretrain.lm_data``): token ids in ``train.bin`` / ``val.bin``, random (x, y) windows;
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
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from llmfs.basics.schedule import cosine_lr
from llmfs.config import progress
from llmfs.pretrain.checkpoint import load_checkpoint, save_checkpoint, unwrap
from llmfs.pretrain.gpt import GPT, GPTConfig
from llmfs.pretrain.lm_data import get_batch, load_tokens, read_meta, resolve_data_dir

# ------------------------------------------------------------------------------------------------ config


def _knob(default, help: str):
    """A TrainConfig field whose ``help`` is also its ``--flag``'s help on the command line."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults are nanoGPT's README "baby" CPU run on the course text.

    Tokens per optimizer step = batch_size * block_size * grad_accum * number of processes.
    Every field is checked when the config is made: a wrong value raises ``ValueError`` naming it.
    """

    # data
    data_dir: str = _knob("kjv-char", "a prepared folder, or 'kjv-char' / 'kjv-gpt2' (prepared on first use)")
    # model (ignored when ``train`` is given a model)
    n_layer: int = _knob(4, "transformer blocks")
    n_head: int = _knob(4, "attention heads per block")
    n_embd: int = _knob(128, "width of the residual stream")
    block_size: int = _knob(64, "context length in tokens")
    dropout: float = _knob(0.0, "dropout probability")
    gelu: str = _knob("tanh", "GELU: 'tanh' (GPT-2's approximation) or 'exact' (erf; faster on CPU)")
    # optimisation
    batch_size: int = _knob(12, "sequences per micro-step, per process")
    grad_accum: int = _knob(1, "micro-steps whose gradients are summed before one optimizer step")
    max_iters: int = _knob(2000, "optimizer steps")
    stop_iter: int = _knob(0, "> 0: stop after this step as if interrupted (the schedule still runs to max_iters)")
    time_budget: float = _knob(0.0, "seconds; > 0: the cosine runs over wall-clock time and training stops at it")
    lr: float = _knob(1e-3, "peak learning rate")
    min_lr: float = _knob(1e-4, "learning rate at the end of the cosine")
    warmup_iters: int = _knob(100, "steps of linear warmup")
    weight_decay: float = _knob(0.1, "AdamW weight decay (matrices and embeddings only)")
    beta1: float = _knob(0.9, "AdamW beta1")
    beta2: float = _knob(0.99, "AdamW beta2")
    grad_clip: float = _knob(1.0, "clip the gradient norm to this; 0: off")
    # evaluation and logging
    eval_interval: int = _knob(250, "steps between evaluations; 0: only at the end")
    eval_iters: int = _knob(20, "batches per periodic evaluation")
    final_eval_iters: int = _knob(200, "batches of the final evaluation (nanoGPT's eval_iters)")
    eval_batch_size: int = _knob(0, "sequences per evaluation batch; 0: batch_size")
    log_interval: int = _knob(10, "steps between progress-bar updates")
    # checkpoints
    out_dir: str = _knob("", "folder for ckpt.safetensors and history.json; '': no files written")
    ckpt_interval: int = _knob(0, "steps between checkpoints (0: only at the end)")
    resume: bool = _knob(False, "continue from out_dir/ckpt.safetensors when it exists")
    # system
    device: str = _knob("auto", "'auto', 'cpu', 'cuda' (or 'cuda:N'), 'mps'")
    dtype: str = _knob("float32", "'float32', or 'bfloat16' / 'float16' for autocast (mixed precision)")
    compile: bool = _knob(False, "torch.compile the model")
    seed: int = _knob(0, "seed of the initial weights, dropout and batches")

    def __post_init__(self):
        for f in dataclasses.fields(self):  # each field has the type of its default
            value, kind = getattr(self, f.name), type(f.default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)  # lr=1 means 1.0
                setattr(self, f.name, value)
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise TypeError(f"TrainConfig.{f.name} must be {kind.__name__}, got {value!r}")
            if kind is float and not math.isfinite(value):
                raise ValueError(f"TrainConfig.{f.name} must be finite, got {value!r}")
        positive = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum", "max_iters",
                    "eval_iters", "final_eval_iters", "log_interval")
        at_least_zero = ("stop_iter", "warmup_iters", "eval_interval", "eval_batch_size", "ckpt_interval",
                         "time_budget", "min_lr", "weight_decay", "grad_clip")
        problems = [f"{k} must be >= 1, got {getattr(self, k)!r}" for k in positive if getattr(self, k) < 1]
        problems += [f"{k} must be >= 0, got {getattr(self, k)!r}" for k in at_least_zero if getattr(self, k) < 0]
        if not math.isfinite(self.lr) or self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr!r}")
        if self.min_lr > self.lr:
            problems.append(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout!r}")
        for k in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, k) < 1.0:
                problems.append(f"{k} must be in [0, 1), got {getattr(self, k)!r}")
        if self.gelu not in ("tanh", "exact"):
            problems.append(f"gelu must be 'tanh' or 'exact', got {self.gelu!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            problems.append(f"dtype must be 'float32', 'bfloat16' or 'float16', got {self.dtype!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            problems.append(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        if self.n_embd % self.n_head:
            problems.append(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.resume and not self.out_dir:
            problems.append("resume=True needs an out_dir to resume from")
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))


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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2
            and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1) such as (0.9, 0.99), got {betas!r}")
    if not (isinstance(weight_decay, (int, float)) and 0 <= weight_decay < math.inf):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() lists tied weights once
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device_type == "cuda")


def get_lr(it: int, cfg: TrainConfig, progress: float | None = None) -> float:
    """The learning rate of step ``it``: ``llmfs.basics.schedule.cosine_lr`` (linear warmup over
    ``warmup_iters`` steps, then a cosine from ``lr`` down to ``min_lr``) with this run's numbers.

    ``progress`` in [0, 1] is how far the decay has gone; by default counted in steps as nanoGPT does.
    A time-budgeted run passes elapsed / time_budget instead.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    return cosine_lr(it, cfg.max_iters, cfg.lr, cfg.min_lr, cfg.warmup_iters, progress)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy. logits (B, T, V), targets (B, T) -> scalar (in float32)."""
    if not (isinstance(logits, torch.Tensor) and isinstance(targets, torch.Tensor) and logits.dim() == 3
            and logits.is_floating_point() and targets.dtype == torch.long and targets.shape == logits.shape[:2]
            and logits.device == targets.device):
        got = ", ".join(f"{n} {tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else f"{n} {type(t).__name__}"
                        for n, t in (("logits", logits), ("targets", targets)))
        raise ValueError(f"need float logits (B, T, V) and int64 targets (B, T) on one device, got {got}")
    if targets.device.type == "cpu" and ((targets >= logits.size(-1)) | (targets < 0) & (targets != -100)).any():
        # (checked on the CPU only: on a GPU, reading the answer back would stall it at every step)
        raise ValueError(f"targets must be token ids in 0..{logits.size(-1) - 1} (or -100: ignored), "
                         f"got {int(targets.min())}..{int(targets.max())}")
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


@torch.no_grad()
def estimate_loss(model: nn.Module, data: np.ndarray, batch_size: int, block_size: int, iters: int,
                  device: str = "cpu", autocast=None, seed: int = 1234) -> float:
    """Mean loss over ``iters`` random batches. A generator of its own, seeded the same at every call,
    picks the batches: every evaluation sees the same text, and training's random stream is untouched."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
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
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    if device_type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device_type must be 'cpu', 'cuda' or 'mps', got {device_type!r}")
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype={"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype])


# ------------------------------------------------------------------------------------------------ the loop


def setup_distributed(device: str = "auto") -> tuple[int, int, str]:
    """(rank, world_size, device) of this process; ``device`` 'auto' is the best one here.

    Under torchrun (RANK set) joins the process group, once: NCCL on GPUs (each process on the GPU
    of its LOCAL_RANK), gloo on CPUs. Every trainer of the course starts with it (also
    ``llmfs.finetune.trainer``)."""
    from llmfs.config import device as best_device

    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if "RANK" not in os.environ:
        return 0, 1, best_device() if device == "auto" else device
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    return rank, dist.get_world_size(), f"cuda:{os.environ['LOCAL_RANK']}" if use_cuda else "cpu"


def train(cfg: TrainConfig, model: nn.Module | None = None, quiet: bool = False) -> TrainResult:
    """Train ``model`` (default: a GPT sized by ``cfg``) on ``cfg.data_dir``; see the module docstring."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be None (a GPT sized by cfg) or a torch.nn.Module, got {type(model).__name__}")
    rank, world, device = setup_distributed(cfg.device)
    ddp, master = world > 1, rank == 0
    device_type = device.split(":")[0]
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    data_dir = resolve_data_dir(cfg.data_dir, prepare=True)  # the named KJV sets are written once
    meta = read_meta(data_dir)
    if model is None:
        model = GPT(GPTConfig(vocab_size=meta["vocab_size"], block_size=cfg.block_size, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, gelu=cfg.gelu))
    model.to(device)
    optimizer = configure_optimizer(model, cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2), device_type)
    torch.manual_seed(cfg.seed + rank)  # dropout differs between processes
    data_gen = torch.Generator().manual_seed(cfg.seed + rank)  # so do the batches
    train_data, val_data = load_tokens(data_dir, "train"), load_tokens(data_dir, "val")

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
    """One ``--flag`` per TrainConfig field, with its type, its default and its help."""
    p = argparse.ArgumentParser(prog="python -m llmfs.pretrain.train", description=__doc__.split("\n")[0])
    for f in dataclasses.fields(TrainConfig):
        kind = type(f.default)
        conv = (lambda s: s.lower() in ("1", "true", "yes", "on")) if kind is bool else kind
        p.add_argument(f"--{f.name}", type=conv, default=f.default, metavar=kind.__name__.upper(),
                       help=f"{f.metadata['help']} (default: %(default)s)")
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
