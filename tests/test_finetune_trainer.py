"""The fine-tuning loop (llmfs.finetune.trainer): the loss goes down, only trainable tensors move,
gradient accumulation, the schedule, hooks, adapter checkpoints, and two processes under torchrun."""

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from test_sft import tiny_llama, tiny_tokenizer  # the tiny random Llama and ChatML tokenizer of the SFT tests

from llmfs.basics.schedule import cosine_lr
from llmfs.finetune import sft
from llmfs.finetune.tasks import make_tasks
from llmfs.finetune.trainer import FinetuneConfig, finetune
from llmfs.pretrain.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def random_batches(n: int, batch_size: int = 2, T: int = 12, vocab: int = 40, seed: int = 0) -> list[dict]:
    """``n`` micro-batches of a small repeated pattern: learnable, so the loss must fall."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        start = torch.randint(0, vocab - T, (batch_size, 1), generator=g)
        ids = start + torch.arange(T)  # counting sequences: token t + 1 follows token t
        batches.append({"input_ids": ids, "labels": ids.clone()})
    return batches


def lm_loss(model, batch):
    return sft.causal_lm_loss(model(input_ids=batch["input_ids"], use_cache=False).logits, batch["labels"])


def test_sft_on_generated_tasks_lowers_the_loss():
    tok = tiny_tokenizer()
    model = tiny_llama().train()
    pairs = [sft.encode_example(tok, e) for e in make_tasks(48, "train", seed=0, families=["parity", "compare"])]
    block = max(len(p[0]) for p in pairs) * 2
    rows = sft.pack(pairs, block_size=block, pad_id=tok.pad_token_id)
    batches = [{k: v[i:i + 4] for k, v in rows.items()} for i in range(0, rows["input_ids"].shape[0], 4)]
    with torch.no_grad():
        before = sum(sft.sft_loss(model, b).item() for b in batches) / len(batches)
    history = finetune(model, batches, sft.sft_loss, FinetuneConfig(max_steps=40, lr=1e-2, min_lr=1e-3, warmup_steps=4),
                       quiet=True)
    with torch.no_grad():
        after = sum(sft.sft_loss(model, b).item() for b in batches) / len(batches)
    print(f"\nSFT on {len(pairs)} packed examples ({len(batches)} batches): loss {before:.3f} -> {after:.3f}")
    assert history["steps"] == 40 and len(history["train_loss"]) == 40
    assert after < 0.5 * before


def test_only_trainable_parameters_move():
    model = tiny_llama().train()
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("model.layers.1.mlp")  # "adapters": one MLP
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = finetune(model, random_batches(8), lm_loss, FinetuneConfig(max_steps=10, lr=1e-2, warmup_steps=0),
                       quiet=True)
    for name, p in model.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == name.startswith("model.layers.1.mlp"), name
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_gradient_accumulation_equals_one_bigger_batch():
    batches = random_batches(6, batch_size=2)
    merged = [{k: torch.cat([a[k], b[k]]) for k in a} for a, b in zip(batches[::2], batches[1::2])]
    cfg = dict(max_steps=3, lr=1e-2, warmup_steps=1, grad_clip=0.5)
    accumulated, big = tiny_llama().train(), tiny_llama().train()
    h1 = finetune(accumulated, batches, lm_loss, FinetuneConfig(grad_accum=2, **cfg), quiet=True)
    h2 = finetune(big, merged, lm_loss, FinetuneConfig(grad_accum=1, **cfg), quiet=True)
    diff = max((a - b).abs().max().item() for a, b in zip(accumulated.parameters(), big.parameters()))
    print(f"\n2 micro-batches of 2 vs 1 batch of 4: max |param diff| = {diff:.1e}")
    assert diff < 1e-5  # steps of lr = 1e-2: equal up to float rounding
    assert h1["train_loss"] == pytest.approx(h2["train_loss"], abs=1e-5)


def test_learning_rate_follows_warmup_then_cosine():
    cfg = FinetuneConfig(max_steps=12, lr=1e-3, min_lr=1e-4, warmup_steps=3)
    history = finetune(tiny_llama().train(), random_batches(4), lm_loss, cfg, quiet=True)
    assert history["lr"] == [cosine_lr(s, 12, 1e-3, 1e-4, 3) for s in range(12)]


def test_metrics_and_eval_hook_are_recorded():
    calls = []

    def loss_with_metrics(model, batch):
        loss = lm_loss(model, batch)
        return loss, {"tokens": batch["input_ids"].numel()}

    def evaluate(model):
        assert not model.training and not torch.is_grad_enabled()
        calls.append(1)
        return {"val_loss": 1.5, "accuracy": 0.25}

    cfg = FinetuneConfig(max_steps=6, eval_interval=2, grad_accum=2, warmup_steps=0)
    history = finetune(tiny_llama().train(), random_batches(4), loss_with_metrics, cfg, eval_fn=evaluate, quiet=True)
    assert history["eval_iter"] == [2, 4, 6] and len(calls) == 3
    assert history["accuracy"] == [0.25] * 3 and history["tokens"] == [24.0] * 6  # mean over the micro-batches


def test_a_list_is_cycled_and_a_generator_ends_training():
    batches = random_batches(3)
    assert finetune(tiny_llama().train(), batches, lm_loss, FinetuneConfig(max_steps=7), quiet=True)["steps"] == 7
    history = finetune(tiny_llama().train(), iter(batches), lm_loss, FinetuneConfig(max_steps=7, grad_accum=2), quiet=True)
    assert history["steps"] == 1  # 3 batches: one step of 2, then the third is not a whole step


def test_checkpoint_holds_the_trainable_tensors_only(tmp_path):
    model = tiny_llama().train()
    for name, p in model.named_parameters():
        p.requires_grad = "q_proj" in name
    cfg = FinetuneConfig(max_steps=4, ckpt_interval=2, out_dir=str(tmp_path), lr=1e-2)
    finetune(model, random_batches(4), lm_loss, cfg, quiet=True)
    ckpt = tmp_path / "ckpt.safetensors"
    with safe_open(str(ckpt), framework="pt") as f:
        names = {k for k in f.keys() if k.startswith("model/")}
    assert names == {f"model/{n}" for n, p in model.named_parameters() if "q_proj" in n} and len(names) == 2
    assert json.loads((tmp_path / "history.json").read_text())["steps"] == 4
    # loading into a fresh model with the same adapters gives the trained tensors back, the rest untouched
    fresh = tiny_llama()
    for name, p in fresh.named_parameters():
        p.requires_grad = "q_proj" in name
    state = load_checkpoint(ckpt, fresh, restore_rng=False)
    assert state["step"] == 4 and state["extra"]["world_size"] == 1
    for (name, a), b in zip(model.named_parameters(), fresh.parameters()):
        assert torch.equal(a, b), name
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


@pytest.mark.parametrize("call,error,message", [
    (lambda: FinetuneConfig(lr=0), ValueError, r"lr must be > 0, got 0.0"),
    (lambda: FinetuneConfig(max_steps=0), ValueError, r"max_steps must be >= 1, got 0"),
    (lambda: FinetuneConfig(min_lr=1.0, lr=0.1), ValueError, r"min_lr \(1.0\) must not exceed lr \(0.1\)"),
    (lambda: FinetuneConfig(dtype="fp8"), ValueError, r"dtype must be 'float32', 'bfloat16' or 'float16', got 'fp8'"),
    (lambda: FinetuneConfig(grad_accum="2"), TypeError, r"FinetuneConfig.grad_accum must be int, got '2'"),
    (lambda: FinetuneConfig(beta2=1.0), ValueError, r"beta2 must be in \[0, 1\)"),
    (lambda: FinetuneConfig(lr=math.nan), ValueError, r"FinetuneConfig.lr must be finite"),
    (lambda: finetune("model", [], lm_loss), TypeError, r"model must be a torch.nn.Module, got str"),
    (lambda: finetune(tiny_llama(), "abc", lm_loss), TypeError, r"batches must be an iterable of batches"),
    (lambda: finetune(tiny_llama(), [], None), TypeError, r"loss_fn must be a function"),
    (lambda: finetune(tiny_llama(), [], lm_loss, cfg={"lr": 1}), TypeError, r"cfg must be a FinetuneConfig, got dict"),
    (lambda: finetune(tiny_llama(), [], lm_loss, eval_fn=3), TypeError, r"eval_fn must be None or a function"),
    (lambda: finetune(tiny_llama().requires_grad_(False), [], lm_loss), ValueError, r"nothing to train"),
    (lambda: finetune(tiny_llama(), random_batches(1), lambda m, b: 1.0, quiet=True), TypeError,
     r"loss_fn must return a scalar float tensor"),
    (lambda: finetune(tiny_llama(), random_batches(1), lambda m, b: torch.tensor(1.0), quiet=True), ValueError,
     r"the loss does not require grad"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------------------------------ torchrun

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, {tests!r})
    from test_finetune_trainer import lm_loss, random_batches
    from test_sft import tiny_llama
    from llmfs.finetune.trainer import FinetuneConfig, finetune

    model = tiny_llama().train()
    cfg = FinetuneConfig(max_steps=4, lr=1e-2, warmup_steps=1, grad_accum=1, out_dir={out!r})
    history = finetune(model, random_batches(8), lm_loss, cfg, quiet=True)
    rank = int(os.environ["RANK"])
    save_file({{n: p.detach().contiguous() for n, p in model.named_parameters()}}, f"{out}/rank{{rank}}.safetensors")
    if rank == 0:
        print("train loss", json.dumps(history["train_loss"]))
""")


def torchrun() -> list[str]:
    exe = Path(sys.executable).parent / "torchrun"
    return [str(exe)] if exe.is_file() else [shutil.which("torchrun") or "torchrun"]


@pytest.mark.integration
def test_torchrun_two_cpu_processes_equal_one_process_with_accumulation(tmp_path):
    """Under torchrun (gloo, DDP) 2 processes with grad_accum=1 take the same steps as 1 process with
    grad_accum=2 on the same batches: process r takes micro-batches r, r + 2, ... and DDP averages."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(ROOT / "tests"), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLMFS_FAST": "1"}
    proc = subprocess.run(torchrun() + ["--standalone", "--nproc_per_node=2", str(script)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("train loss") == 1  # only rank 0 reports
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])  # DDP keeps the processes in step

    model = tiny_llama().train()
    single = finetune(model, random_batches(8), lm_loss,
                      FinetuneConfig(max_steps=4, lr=1e-2, warmup_steps=1, grad_accum=2), quiet=True)
    diff = max((p - ranks[0][n]).abs().max().item() for n, p in model.named_parameters())
    ddp_loss = json.loads(proc.stdout.split("train loss", 1)[1].strip().splitlines()[0])
    print(f"\ntorchrun 2 x grad_accum 1 vs 1 x grad_accum 2: max |param diff| = {diff:.1e}; losses {ddp_loss} "
          f"vs {single['train_loss']}")
    assert diff < 1e-5
    assert ddp_loss == pytest.approx(single["train_loss"], abs=1e-5)
    state = json.loads((tmp_path / "history.json").read_text())
    assert state["steps"] == 4 and (tmp_path / "ckpt.safetensors").is_file()
