"""A small PyTorch training loop for image classifiers (built in notebook 05, reused in 06).

    train_loader, test_loader = mnist_loaders(batch_size=128, flatten=True)
    history = fit(model, train_loader, test_loader, epochs=5, optimizer=opt, device="cpu")
    history["test_acc"][-1]                                   # accuracy after the last epoch

No framework: one function per step of the loop, each a few lines a learner can read.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from llmfs.config import check_device
from llmfs.config import progress as progress_bar
from llmfs.data import load_mnist, normalize_mnist


def _check(model: nn.Module, loaders: tuple, device: str, optimizer=False, scheduler=None) -> str:
    """The device as a string (``llmfs.config.check_device``), after a TypeError for a model that is not an
    ``nn.Module``, a loader that is not iterable, or (when one is expected) a wrong optimizer or scheduler."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for loader in loaders:
        if not hasattr(loader, "__iter__") or isinstance(loader, (str, bytes, torch.Tensor)):
            raise TypeError(f"a loader must be an iterable of (x, y) batches such as a DataLoader, got {type(loader).__name__}")
    if optimizer is not False and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"scheduler must be None or have a step() method (e.g. OneCycleLR), got {type(scheduler).__name__}")
    return check_device(device)


def mnist_tensors(n_train: int | None = None, n_test: int | None = None, flatten: bool = False):
    """MNIST as normalised float32 tensors: ``(x_train, y_train, x_test, y_test)``.

    x: (N, 1, 28, 28), or (N, 784) with ``flatten``, scaled to [0, 1] then standardised with the
    training mean and std (``llmfs.data.normalize_mnist``); y: int64 (N,). ``n_train`` / ``n_test`` keep the first examples only.
    """
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"{name} must be None (all examples) or an integer >= 1, got {n!r}")
    m = load_mnist()

    def prep(x: np.ndarray, y: np.ndarray, n: int | None):
        x = torch.from_numpy(normalize_mnist(x[:n]))
        x = x.reshape(len(x), -1) if flatten else x.unsqueeze(1)
        return x, torch.from_numpy(y[:n].astype(np.int64))

    return (*prep(m.x_train, m.y_train, n_train), *prep(m.x_test, m.y_test, n_test))


def mnist_loaders(batch_size: int = 128, n_train: int | None = None, n_test: int | None = None,
                  flatten: bool = False, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Shuffled training batches (seeded: the same order on every run) and ordered test batches."""
    for name, value, low in (("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    x_train, y_train, x_test, y_test = mnist_tensors(n_train, n_test, flatten)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=1000)
    return train, test


def train_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, device: str = "cpu",
                scheduler=None, progress: bool = False) -> float:
    """One pass over ``loader``: forward, cross-entropy, backward, step. Returns the mean loss.

    ``scheduler`` (e.g. OneCycleLR) is stepped after every batch.
    """
    device = _check(model, (loader,), device, optimizer, scheduler)
    model.train()
    total, count = 0.0, 0
    for x, y in (progress_bar(loader, leave=False, desc="batches") if progress else loader):
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total, count = total + loss.item() * len(y), count + len(y)
    if count == 0:
        raise ValueError("the loader gave no examples")
    return total / count


@torch.no_grad()
def predict(model: nn.Module, loader, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, n_classes) and labels (N,) of every example of ``loader``, on the CPU."""
    device = _check(model, (loader,), device)
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).cpu())
        labels.append(y)
    if not logits:
        raise ValueError("the loader gave no batches")
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: nn.Module, loader, device: str = "cpu") -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``loader``."""
    logits, labels = predict(model, loader, device)
    loss = F.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(dim=1) == labels).float().mean().item()


def fit(model: nn.Module, train_loader, test_loader, epochs: int, optimizer: torch.optim.Optimizer,
        device: str = "cpu", scheduler=None, progress: bool = True) -> dict[str, list[float]]:
    """Train for ``epochs`` epochs, evaluating after each one.

    Returns the history ``{'train_loss': [...], 'test_loss': [...], 'test_acc': [...]}``, one value
    per epoch (ready for ``llmfs.plots.plot_curves``).
    """
    device = _check(model, (train_loader, test_loader), device, optimizer, scheduler)
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    model.to(device)
    history: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "test_acc": []}
    for _ in (progress_bar(range(epochs), desc="epochs") if progress else range(epochs)):
        history["train_loss"].append(train_epoch(model, train_loader, optimizer, device, scheduler, progress))
        test_loss, test_acc = evaluate(model, test_loader, device)
        history["test_loss"].append(test_loss)
        history["test_acc"].append(test_acc)
    return history
