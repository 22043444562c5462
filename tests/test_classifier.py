"""The shared training loop: data preparation, one epoch, evaluation and fit."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from llmfs.basics import torch_loop as classifier


def test_mnist_tensors_shapes_and_normalisation():
    x_train, y_train, x_test, y_test = classifier.mnist_tensors(n_train=5000, n_test=300)
    assert x_train.shape == (5000, 1, 28, 28) and x_test.shape == (300, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9] and y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert abs(x_train.mean().item()) < 0.05 and abs(x_train.std().item() - 1) < 0.05  # standardised
    flat = classifier.mnist_tensors(n_train=10, n_test=10, flatten=True)[0]
    assert flat.shape == (10, 784) and torch.equal(flat, x_train[:10].reshape(10, -1))


def test_loaders_are_seeded_and_batched():
    a, test = classifier.mnist_loaders(batch_size=32, n_train=256, n_test=100, seed=1)
    b, _ = classifier.mnist_loaders(batch_size=32, n_train=256, n_test=100, seed=1)
    c, _ = classifier.mnist_loaders(batch_size=32, n_train=256, n_test=100, seed=2)
    ya, yb, yc = (next(iter(loader))[1] for loader in (a, b, c))
    assert torch.equal(ya, yb) and not torch.equal(ya, yc)
    assert len(a) == 8 and sum(len(y) for _, y in test) == 100


def test_evaluate_counts_correct_predictions():
    x = torch.eye(4)
    y = torch.tensor([0, 1, 2, 0])  # an identity model gets the first three right
    loss, acc = classifier.evaluate(nn.Identity(), DataLoader(TensorDataset(x, y), batch_size=3))
    assert acc == 0.75
    expected = torch.nn.functional.cross_entropy(x, y).item()
    assert abs(loss - expected) < 1e-6


def test_train_epoch_steps_scheduler_and_fit_learns():
    torch.manual_seed(0)
    train, test = classifier.mnist_loaders(batch_size=64, n_train=2000, n_test=500, flatten=True)
    model = nn.Linear(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2 * len(train))
    before = classifier.evaluate(model, test)[1]
    history = classifier.fit(model, train, test, epochs=2, optimizer=opt, scheduler=sched, progress=False)
    assert set(history) == {"train_loss", "test_loss", "test_acc"}
    assert all(len(v) == 2 for v in history.values())
    assert sched.last_epoch == 2 * len(train)  # stepped once per batch
    assert history["train_loss"][1] < history["train_loss"][0]
    assert before < 0.3 and history["test_acc"][-1] > 0.8
