"""Time the FULL training run of notebook 01CB/03 (the NumPy MLP on MNIST) on 2 CPU threads.

    python -m tools.bench_mlp              # the notebook's FULL recipe, llmfs.basics.mlp_numpy.MNIST_RECIPE
    python -m tools.bench_mlp --threads 1  # or any other number of BLAS threads

Prints the recipe, the wall time of training (data loading excluded) and the test accuracy.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from llmfs.basics import mlp_numpy
from llmfs.data import load_mnist


def run(recipe: dict, seed: int = 0) -> tuple[float, float]:
    """Train ``recipe`` on MNIST from scratch; returns (training wall time in s, test accuracy)."""
    x_train, y_train, x_test, y_test = load_mnist()
    x_train, x_test = mlp_numpy.preprocess(x_train), mlp_numpy.preprocess(x_test)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    params = mlp_numpy.init_params(recipe["sizes"], np.random.default_rng(seed))
    hyper = {k: v for k, v in recipe.items() if k != "sizes"}
    start = time.perf_counter()
    mlp_numpy.train(params, x_train, y_train, seed=seed, **hyper)
    seconds = time.perf_counter() - start
    return seconds, mlp_numpy.accuracy(params, x_test, y_test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_mlp", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2: the course's 2-core machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    recipe = mlp_numpy.MNIST_RECIPE
    print(f"recipe: {recipe}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, numpy {np.__version__}")
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        print("threadpoolctl is missing: BLAS uses its default number of threads")
        seconds, acc = run(recipe, args.seed)
    else:
        with threadpool_limits(limits=args.threads, user_api="blas"):
            seconds, acc = run(recipe, args.seed)
        print(f"BLAS threads: {args.threads}")
    print(f"train time: {seconds:.1f} s ({seconds / recipe['epochs']:.2f} s per epoch)")
    print(f"test accuracy: {acc:.4f}")


if __name__ == "__main__":
    main()
