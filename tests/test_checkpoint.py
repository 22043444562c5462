"""Checkpoints: a round trip restores model, optimizer, step and every random stream; writes are atomic."""

import os
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from llmfs.pretrain.checkpoint import load_checkpoint, save_checkpoint, unwrap
from llmfs.pretrain.gpt import GPT, GPTConfig


def tiny_gpt(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8))


def one_step(model, opt):
    x = torch.randint(0, 13, (2, 8))
    model(x).logsumexp(-1).mean().backward()
    opt.step()
    opt.zero_grad()


def test_round_trip_restores_everything(tmp_path):
    model = tiny_gpt(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    for _ in range(3):
        one_step(model, opt)
    gen = torch.Generator().manual_seed(7)
    path = save_checkpoint(tmp_path / "ckpt.safetensors", model, opt, step=3, generators={"data": gen},
                           extra={"note": "hi"})
    # what comes next if we had not stopped
    after = (torch.rand(3), np.random.rand(), random.random(), torch.randint(0, 100, (3,), generator=gen))

    model2 = tiny_gpt(1)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.5)
    gen2 = torch.Generator().manual_seed(99)
    state = load_checkpoint(path, model2, opt2, generators={"data": gen2})
    assert state == {"step": 3, "extra": {"note": "hi"}}
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), n
    assert model2.lm_head.weight is model2.transformer.wte.weight  # weight tying survives
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.param_groups[0]["betas"] == (0.9, 0.95)
    again = (torch.rand(3), np.random.rand(), random.random(), torch.randint(0, 100, (3,), generator=gen2))
    assert torch.equal(after[0], again[0]) and after[1] == again[1] and after[2] == again[2]
    assert torch.equal(after[3], again[3])
    # the next optimizer step is the same: the moments came back
    torch.manual_seed(5)
    one_step(model, opt)
    torch.manual_seed(5)
    one_step(model2, opt2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_file_is_plain_safetensors_with_tied_weights_stored_once(tmp_path):
    model = tiny_gpt(0)
    path = save_checkpoint(tmp_path / "c.safetensors", model)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert "model/transformer.wte.weight" in keys and "model/lm_head.weight" not in keys
    assert "rng/torch" in keys


def test_write_is_atomic(tmp_path, monkeypatch):
    model, path = tiny_gpt(0), tmp_path / "c.safetensors"
    save_checkpoint(path, model, step=1)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, tiny_gpt(1), step=2)
    assert path.read_bytes() == before  # the old checkpoint is intact...
    assert os.listdir(tmp_path) == ["c.safetensors"]  # ...and no temporary file is left behind


def test_unwrap_and_errors(tmp_path):
    model = tiny_gpt(0)
    wrapper = torch.nn.Module()
    wrapper.module = model
    assert unwrap(wrapper) is model
    path = save_checkpoint(tmp_path / "c.safetensors", wrapper)  # saves the inner model's names
    with pytest.raises(ValueError, match="no optimizer"):
        load_checkpoint(path, tiny_gpt(1), torch.optim.AdamW(model.parameters()))
