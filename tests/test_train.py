"""The trainer's pieces (data, optimizer groups, schedule, accumulation) and its promise: a run that is
stopped and resumed from its checkpoint continues the same loss curve, bit for bit."""

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from llmfs.data import load_kjv
from llmfs.pretrain.bpe import CharTokenizer
from llmfs.pretrain.gpt import GPT, GPTConfig
from llmfs.pretrain.lm_data import get_batch, load_tokens, prepare_data, read_meta
from llmfs.pretrain.train import TrainConfig, configure_optimizer, get_lr, train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    text = load_kjv()[:60_000]
    tok = CharTokenizer.from_text(text)
    return str(prepare_data(text, tmp_path_factory.mktemp("data"), tok.encode, tok.vocab_size,
                            meta={"itos": tok.itos}))


def tiny(data_dir, **kw) -> TrainConfig:
    base = dict(data_dir=data_dir, n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=8,
                warmup_iters=2, eval_interval=4, eval_iters=2, final_eval_iters=2, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_prepare_data_and_batches(data_dir):
    meta = read_meta(data_dir)
    train_ids, val_ids = load_tokens(data_dir, "train"), load_tokens(data_dir, "val")
    assert isinstance(train_ids, np.memmap) and train_ids.dtype == np.uint16
    assert len(train_ids) == 54_000 and len(val_ids) == 6_000  # the first 90 % / the last 10 %
    tok = CharTokenizer(meta["itos"])
    assert tok.decode(train_ids[:20]) == load_kjv()[:20]
    x, y = get_batch(train_ids, 5, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token


def test_decay_groups():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
    opt = configure_optimizer(model, 0.1, 1e-3, (0.9, 0.99))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # every parameter once (tied: once)


def test_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=110)
    lrs = [get_lr(i, cfg) for i in range(111)]
    assert lrs[0] == pytest.approx(1e-3 / 11) and lrs[9] == pytest.approx(1e-3 * 10 / 11)
    assert lrs[10] == pytest.approx(1e-3) and lrs[110] == pytest.approx(1e-4)
    assert lrs[60] == pytest.approx(1e-4 + 0.5 * 0.9e-3)  # half way: the mean of lr and min_lr
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert get_lr(50, cfg, progress=1.0) == pytest.approx(1e-4)  # a time budget drives the decay instead
    assert get_lr(50, cfg, progress=0.5) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi / 2)))


def test_gradient_accumulation_equals_the_big_batch(data_dir):
    one = train(tiny(data_dir, batch_size=8, grad_accum=1, max_iters=3), quiet=True)
    acc = train(tiny(data_dir, batch_size=4, grad_accum=2, max_iters=3), quiet=True)
    # the sampler draws the same 8 windows either way; the updates agree up to float rounding
    assert np.allclose(one.history["train_loss"], acc.history["train_loss"], atol=1e-5)
    for a, b in zip(one.model.parameters(), acc.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_training_lowers_the_loss(data_dir):
    result = train(tiny(data_dir, max_iters=60, lr=3e-3, eval_interval=0, final_eval_iters=10), quiet=True)
    h = result.history
    assert len(h["train_loss"]) == len(h["iter"]) == len(h["lr"]) == 60
    assert result.val_loss < math.log(read_meta(data_dir)["vocab_size"]) - 0.7


def test_resume_continues_the_same_loss_curve(data_dir, tmp_path):
    full = train(tiny(data_dir, dropout=0.1), quiet=True)
    first = train(tiny(data_dir, dropout=0.1, out_dir=str(tmp_path), stop_iter=5), quiet=True)
    rest = train(tiny(data_dir, dropout=0.1, out_dir=str(tmp_path), resume=True), quiet=True)
    assert first.history["train_loss"] == full.history["train_loss"][:5]
    assert rest.history["train_loss"] == full.history["train_loss"]  # bitwise, dropout included
    for a, b in zip(full.model.parameters(), rest.model.parameters()):
        assert torch.equal(a, b)
    assert (tmp_path / "history.json").is_file()


def test_script_help():
    out = subprocess.run([sys.executable, "-m", "llmfs.pretrain.train", "--help"], capture_output=True, text=True, check=True)
    for f in dataclasses.fields(TrainConfig):  # every field is a flag, with its help from the dataclass
        assert f"--{f.name}" in out.stdout and f.metadata["help"].split(";")[0][:30] in " ".join(out.stdout.split())
    assert "--time_budget" in out.stdout and "--grad_accum" in out.stdout


def test_prepare_kjv_char(tmp_path):
    from llmfs.pretrain.lm_data import prepare_kjv

    out = prepare_kjv("char", root=tmp_path)
    assert prepare_kjv("char", root=tmp_path) == out  # prepared once, then reused
    meta = read_meta(out)
    assert meta["vocab_size"] == 65 and len(meta["itos"]) == 65
    n = len(load_tokens(out, "train")) + len(load_tokens(out, "val"))
    assert n == len(load_kjv()) and not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(ValueError, match="unknown tokenizer"):
        prepare_kjv("words", root=tmp_path)


def test_estimate_loss_is_repeatable_and_leaves_the_rng_alone(data_dir):
    from llmfs.pretrain.train import estimate_loss

    model = GPT(GPTConfig(vocab_size=read_meta(data_dir)["vocab_size"], block_size=16, n_layer=1, n_head=2, n_embd=16))
    val = load_tokens(data_dir, "val")
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b = estimate_loss(model, val, 4, 16, 3), estimate_loss(model, val, 4, 16, 3)
    assert a == b and torch.equal(torch.get_rng_state(), before) and model.training
