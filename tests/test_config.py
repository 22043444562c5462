import numpy as np
import pytest
import torch

from llmfs import config


@pytest.mark.parametrize("value,fast", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_fast_mode_reads_the_environment(monkeypatch, value, fast):
    monkeypatch.setenv("LLMFS_FAST", value)
    assert config.is_fast() is fast
    assert config.setup(verbose=False).fast is fast


def test_pick_chooses_by_mode():
    assert config.Setup(fast=True, device="cpu", seed=0).pick(10, 1000) == 10
    assert config.Setup(fast=False, device="cpu", seed=0).pick(10, 1000) == 1000


def test_seed_everything_makes_runs_repeat():
    config.seed_everything(123)
    a = np.random.rand(3), torch.rand(3)
    config.seed_everything(123)
    b = np.random.rand(3), torch.rand(3)
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_device_can_be_forced(monkeypatch):
    monkeypatch.setenv("LLMFS_DEVICE", "cpu")
    assert config.device() == "cpu"
    monkeypatch.delenv("LLMFS_DEVICE")
    assert config.device() in {"cpu", "cuda", "mps"}


def test_progress_is_a_working_iterator():
    assert list(config.progress(range(3), desc="t")) == [0, 1, 2]
