"""The trainer under torchrun: two CPU processes (gloo backend), DistributedDataParallel, a few steps."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmfs.data import load_kjv
from llmfs.pretrain.bpe import CharTokenizer
from llmfs.pretrain.checkpoint import load_checkpoint
from llmfs.pretrain.gpt import GPT, GPTConfig
from llmfs.pretrain.lm_data import prepare_data

pytestmark = pytest.mark.integration  # `make unit` leaves these to `make test` / `make integration`


def torchrun() -> list[str]:
    exe = Path(sys.executable).parent / "torchrun"
    return [str(exe)] if exe.is_file() else [shutil.which("torchrun") or "torchrun"]


def test_torchrun_two_cpu_processes(tmp_path):
    text = load_kjv()[:40_000]
    tok = CharTokenizer.from_text(text)
    data = prepare_data(text, tmp_path / "data", tok.encode, tok.vocab_size)
    out = tmp_path / "out"
    cmd = torchrun() + ["--standalone", "--nproc_per_node=2", "-m", "llmfs.pretrain.train", "--data_dir", str(data),
                        "--device", "cpu", "--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
                        "--batch_size", "4", "--max_iters", "6", "--warmup_iters", "2", "--eval_interval", "3",
                        "--eval_iters", "2", "--final_eval_iters", "2", "--out_dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLMFS_FAST": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "val loss" in proc.stdout and proc.stdout.count("val loss") == 1  # only rank 0 reports

    history = json.loads((out / "history.json").read_text())
    assert len(history["train_loss"]) == 6 and all(0 < x < 10 for x in history["train_loss"])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    state = load_checkpoint(out / "ckpt.safetensors", model, restore_rng=False)
    assert state["step"] == 6 and state["extra"]["world_size"] == 2
    assert torch.isfinite(model(torch.zeros(1, 4, dtype=torch.long))).all()
