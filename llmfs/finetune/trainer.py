"""One training loop for every fine-tuning of the series: full SFT, LoRA, QLoRA and DPO.

    history = finetune(model, batches, sft_loss, FinetuneConfig(max_steps=300, lr=2e-4))
    history = finetune(model, pairs, my_dpo_loss, cfg, eval_fn=evaluate)   # my_dpo_loss returns (loss, metrics)

What changes from one method to the next is not the loop but two things it is given:
- ``batches``: any iterable of batches (a dict of tensors, a tuple...), moved to the model's device;
  a list (or anything that can be iterated again) is cycled over epochs, a one-shot iterator (a
  generator) ends training when it runs out;
- ``loss_fn(model, batch)``: a scalar loss tensor, or ``(loss, {"name": value, ...})`` whose values are
  averaged per step into ``history`` (DPO's rewards, an accuracy...).
What is trained is what requires grad: freeze the base model and only the adapters move.

The loop is the pretraining trainer's (``llmfs.pretrain.train``): AdamW over the trainable parameters
(``configure_optimizer``), linear warmup then cosine (``llmfs.basics.schedule.cosine_lr``), gradient
accumulation, gradient clipping, mixed precision, an evaluation hook, atomic safetensors checkpoints
(``llmfs.pretrain.checkpoint``, trainable tensors only) and DistributedDataParallel under ``torchrun``:

    torchrun --standalone --nproc_per_node=2 my_script.py     # gloo on CPUs, NCCL on GPUs

Under torchrun every process must iterate the same batches: process r keeps micro-batches r,
r + world, r + 2 world...; the gradients are averaged, so 2 processes with ``grad_accum=1`` take the
same steps as 1 process with ``grad_accum=2``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from llmfs.basics.schedule import cosine_lr
from llmfs.config import progress
from llmfs.pretrain.checkpoint import save_checkpoint, unwrap
from llmfs.pretrain.train import autocast_context, configure_optimizer, setup_distributed


@dataclass
class FinetuneConfig:
    """The knobs of a fine-tuning run. Tokens per optimizer step = batch tokens * grad_accum * processes.
    Every field is checked when the config is made: a wrong value raises ``ValueError`` or ``TypeError``."""

    max_steps: int = 100  # optimizer steps
    lr: float = 1e-4  # peak learning rate (LoRA usually wants ~10x full fine-tuning's)
    min_lr: float = 1e-5  # learning rate at the end of the cosine
    warmup_steps: int = 10  # steps of linear warmup
    weight_decay: float = 0.0  # AdamW weight decay on matrices (0: none, as peft and trl default)
    beta1: float = 0.9
    beta2: float = 0.999
    grad_accum: int = 1  # micro-batches whose gradients are summed before one optimizer step
    grad_clip: float = 1.0  # clip the gradient norm to this; 0: off
    eval_interval: int = 0  # steps between calls of eval_fn; 0: only at the end
    log_interval: int = 10  # steps between progress-bar updates
    out_dir: str = ""  # folder for ckpt.safetensors (trainable tensors) and history.json; "": none
    ckpt_interval: int = 0  # steps between checkpoints; 0: only at the end
    dtype: str = "float32"  # or "bfloat16" / "float16": autocast (mixed precision)
    seed: int = 0  # seeds torch (dropout) at the start; process r uses seed + r

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), type(f.default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TypeError(f"FinetuneConfig.{f.name} must be {kind.__name__}, got {value!r}")
            if kind is float and not math.isfinite(value):
                raise ValueError(f"FinetuneConfig.{f.name} must be finite, got {value!r}")
        problems = [f"{k} must be >= 1, got {getattr(self, k)!r}"
                    for k in ("max_steps", "grad_accum", "log_interval") if getattr(self, k) < 1]
        problems += [f"{k} must be >= 0, got {getattr(self, k)!r}"
                     for k in ("min_lr", "warmup_steps", "weight_decay", "grad_clip", "eval_interval", "ckpt_interval")
                     if getattr(self, k) < 0]
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr!r}")
        if self.min_lr > self.lr:
            problems.append(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        for k in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, k) < 1.0:
                problems.append(f"{k} must be in [0, 1), got {getattr(self, k)!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            problems.append(f"dtype must be 'float32', 'bfloat16' or 'float16', got {self.dtype!r}")
        if problems:
            raise ValueError("FinetuneConfig: " + "; ".join(problems))


def _to_device(batch, device: torch.device):
    """The batch with every tensor in it (in dicts, lists and tuples too) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _own_batches(batches: Iterable, rank: int, world: int) -> Iterator:
    """Every ``world``-th batch from the ``rank``-th; a re-iterable ``batches`` is cycled over epochs."""
    one_shot = iter(batches) is batches
    index = 0
    while True:
        empty = True
        for batch in batches:
            empty = False
            if index % world == rank:
                yield batch
            index += 1
        if one_shot or empty:
            return


def _split_output(out) -> tuple[torch.Tensor, dict]:
    loss, metrics = (out if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict) else (out, {}))
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.is_floating_point():
        raise TypeError(f"loss_fn must return a scalar float tensor, or (loss, dict of metrics), got {out!r:.80}")
    if not loss.requires_grad:
        raise ValueError("the loss does not require grad: no trainable parameter was used to compute it")
    return loss, metrics


def finetune(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable,
    cfg: FinetuneConfig | None = None,
    eval_fn: Callable[[nn.Module], float | dict] | None = None,
    quiet: bool = False,
) -> dict:
    """Train the parameters of ``model`` that require grad on ``batches`` with ``loss_fn(model, batch)``.

    ``eval_fn(model) -> float | dict`` (optional) runs on process 0 every ``cfg.eval_interval`` steps and
    at the end, in eval mode and without gradients; a float is recorded as "val_loss".
    The model is trained in place on the device it is on (under torchrun with CUDA: the process's GPU).
    Returns the history: ``iter``, ``train_loss`` (mean over the step's micro-batches and processes), ``lr``,
    each metric of ``loss_fn``, ``eval_iter`` and each of ``eval_fn``'s values, ``steps``, ``train_time``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(batches, (str, bytes, dict, torch.Tensor)) or not isinstance(batches, Iterable):
        raise TypeError(f"batches must be an iterable of batches (a list, a generator...), got {type(batches).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (model, batch) -> loss tensor, got {type(loss_fn).__name__}")
    cfg = FinetuneConfig() if cfg is None else cfg
    if not isinstance(cfg, FinetuneConfig):
        raise TypeError(f"cfg must be a FinetuneConfig, got {type(cfg).__name__}")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be None or a function model -> float or dict, got {type(eval_fn).__name__}")
    raw = unwrap(model)
    params = [p for p in raw.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter of the model requires grad: nothing to train (freeze less, or add adapters)")

    device = params[0].device
    rank, world, placed = setup_distributed("cuda" if device.type == "cuda" else device.type)
    ddp, master = world > 1, rank == 0
    if ddp and placed != str(device):
        raw.to(placed)
        device = torch.device(placed)
    torch.manual_seed(cfg.seed + rank)  # dropout differs between processes
    optimizer = configure_optimizer(raw, cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2), device.type)
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(raw, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        model = raw
    autocast = autocast_context(device.type, cfg.dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.dtype == "float16")
    stream = _own_batches(batches, rank, world)
    history: dict = {"iter": [], "train_loss": [], "lr": [], "eval_iter": []}
    ckpt = Path(cfg.out_dir) / "ckpt.safetensors" if cfg.out_dir else None
    t0 = time.perf_counter()

    def evaluate(step: int) -> None:
        was_training = raw.training
        raw.eval()
        with torch.no_grad(), autocast:
            result = eval_fn(raw)
        raw.train(was_training)
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            result = {"val_loss": result}
        if not isinstance(result, dict):
            raise TypeError(f"eval_fn must return a number or a dict of numbers, got {type(result).__name__}")
        history["eval_iter"].append(step)
        for k, v in result.items():
            history.setdefault(k, []).append(float(v))

    def save(step: int) -> None:
        if ckpt is not None and master:
            save_checkpoint(ckpt, raw, optimizer, step, trainable_only=True,
                            extra={"history": history, "world_size": world, "config": dataclasses.asdict(cfg)})

    def next_batch():
        batch = next(stream, None)
        if ddp:  # all processes stop together when one runs out of batches
            have = torch.tensor([float(batch is not None)])
            dist.all_reduce(have, op=dist.ReduceOp.MIN)
            return batch if have.item() else None
        return batch

    bar = progress(total=cfg.max_steps, **({"disable": True} if quiet or not master else {}))
    model.train()
    step = 0
    while step < cfg.max_steps:
        lr = cosine_lr(step, cfg.max_steps, cfg.lr, cfg.min_lr, cfg.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if eval_fn is not None and master and cfg.eval_interval and step % cfg.eval_interval == 0 and step > 0:
            evaluate(step)
        loss_sum = torch.zeros((), device=device)
        sums: dict[str, float] = {}
        finished = False
        for micro in range(cfg.grad_accum):
            batch = next_batch()
            if batch is None:
                finished = True
                break
            sync = nullcontext() if not ddp or micro == cfg.grad_accum - 1 else model.no_sync()
            with sync:
                with autocast:
                    loss, metrics = _split_output(loss_fn(model, _to_device(batch, device)))
                scaler.scale(loss / cfg.grad_accum).backward()  # summed over micro-steps = the mean
            loss_sum += loss.detach().float() / cfg.grad_accum
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) / cfg.grad_accum
        if finished:  # the batches ran out in the middle of a step: that step is not taken
            optimizer.zero_grad(set_to_none=True)
            break
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if ddp:  # the loss reported is the mean over processes
            dist.all_reduce(loss_sum)
            loss_sum /= world
        history["iter"].append(step)
        history["lr"].append(lr)
        history["train_loss"].append(loss_sum.item())
        for k, v in sums.items():
            history.setdefault(k, []).append(v)
        step += 1
        if step % cfg.log_interval == 0:
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", lr=f"{lr:.2e}")
        bar.update(1)
        if cfg.ckpt_interval and step % cfg.ckpt_interval == 0:
            save(step)
    bar.close()
    history["steps"] = step
    history["train_time"] = time.perf_counter() - t0
    if master:
        if eval_fn is not None:
            evaluate(step)
        save(step)
        if cfg.out_dir:
            Path(cfg.out_dir, "history.json").write_text(json.dumps(history))
    if ddp:
        dist.barrier()
    return history
