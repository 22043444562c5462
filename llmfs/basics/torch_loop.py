"""A small PyTorch training loop for image classifiers (built in notebook 05, reused in 06).

    train_loader, test_loader = mnist_loaders(batch_size=128, flatten=True)
    history = fit(model, train_loader, test_loader, epochs=5, optimizer=opt, device="cpu")
    history["test_acc"][-1]                                   # accuracy after the last epoch

No framework: one function per step of the loop, each a few lines a learner can read.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from llmfs.config import progress as progress_bar
from llmfs.data import load_mnist, normalize_mnist


def mnist_tensors(n_train: int | None = None, n_test: int | None = None, flatten: bool = False):
    """MNIST as normalised float32 tensors: ``(x_train, y_train, x_test, y_test)``.

    x: (N, 1, 28, 28), or (N, 784) with ``flatten``, scaled to [0, 1] then standardised with the
    training mean and std (``llmfs.data.normalize_mnist``); y: int64 (N,). ``n_train`` / ``n_test`` keep the first examples only.
    """
    m = load_mnist()

    def prep(x: np.ndarray, y: np.ndarray, n: int | None):
        x = torch.from_numpy(normalize_mnist(x[:n]))
        x = x.reshape(len(x), -1) if flatten else x.unsqueeze(1)
        return x, torch.from_numpy(y[:n].astype(np.int64))

    return (*prep(m.x_train, m.y_train, n_train), *prep(m.x_test, m.y_test, n_test))


def mnist_loaders(batch_size: int = 128, n_train: int | None = None, n_test: int | None = None,
                  flatten: bool = False, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Shuffled training batches (seeded: the same order on every run) and ordered test batches."""
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
    return total / count


@torch.no_grad()
def predict(model: nn.Module, loader, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, n_classes) and labels (N,) of every example of ``loader``, on the CPU."""
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).cpu())
        labels.append(y)
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
    model.to(device)
    history: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "test_acc": []}
    for _ in (progress_bar(range(epochs), desc="epochs") if progress else range(epochs)):
        history["train_loss"].append(train_epoch(model, train_loader, optimizer, device, scheduler, progress))
        test_loss, test_acc = evaluate(model, test_loader, device)
        history["test_loss"].append(test_loss)
        history["test_acc"].append(test_acc)
    return history
