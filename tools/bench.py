"""Benchmark of the C++ kernels against NumPy (OpenBLAS) on this machine: ``make bench``.

Every figure and every ratio comes from the same run, one thread on each side. The table says,
for each kernel: time, GFLOP/s or GB/s, NumPy's time for the same product, the speed-up, the
target speed-up over NumPy (matmul >= 0.9x, matvec >= 0.95x, matvec_q8_0 >= 3.3x and
matvec_q4_0 >= 6x NumPy's float32 matvec of the same matrix; attention_decode is reported only),
and the fraction of this core's limit (its FMA peak for GEMM, its streaming read bandwidth for the
memory-bound kernels; both measured by ``llmfs._kernels`` below). Each kernel runs its automatic
path (``path="auto"``); the paths are printed above the table.

Memory-bound kernels are timed "cold": several copies of the weights (together > 128 MB) are
used in turn, so each call streams its weights from DRAM, as in a real model whose weights do
not fit in the 32 MiB L3. ``--hot`` times them on one copy instead (cache-resident where small).

    python -m tools.bench [--quick] [--hot]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _one_blas_thread() -> None:
    """NumPy's BLAS reads its thread count when it loads, so set it and restart if needed."""
    if all(os.environ.get(v) == "1" for v in _THREAD_VARS):
        return
    env = dict(os.environ, **{v: "1" for v in _THREAD_VARS})
    os.execve(sys.executable, [sys.executable, "-m", "tools.bench", *sys.argv[1:]], env)


@dataclass
class Row:
    kernel: str
    shape: str
    seconds: float
    flops: float  # 0 where the figure of merit is bandwidth
    nbytes: float  # bytes the kernel must read
    numpy_seconds: float | None
    target: float | None  # required speed-up over numpy
    limit: float  # GFLOP/s or GB/s ceiling of this core

    @property
    def speedup(self) -> float | None:
        return None if self.numpy_seconds is None else self.numpy_seconds / self.seconds

    def cells(self) -> list[str]:
        gflops = self.flops / self.seconds / 1e9
        gbps = self.nbytes / self.seconds / 1e9
        merit = gflops if self.flops else gbps
        ok = "-" if self.target is None else ("yes" if self.speedup >= self.target else "NO")
        return [
            self.kernel,
            self.shape,
            f"{self.seconds * 1e3:.3f}",
            f"{gflops:.1f}" if self.flops else "-",
            f"{gbps:.1f}",
            "-" if self.numpy_seconds is None else f"{self.numpy_seconds * 1e3:.3f}",
            "-" if self.speedup is None else f"{self.speedup:.2f}x",
            "-" if self.target is None else f">= {self.target:g}x",
            f"{100 * merit / self.limit:.0f}%" if self.limit else "-",
            ok,
        ]


HEADER = ["kernel", "shape", "ms", "GFLOP/s", "GB/s", "numpy ms", "speed-up", "target", "of limit", "met"]


def best_times(fns: list[Callable[[int], object]], copies: int, reps: int) -> list[float]:
    """Smallest time of each fn(i) over `reps` rounds, the functions interleaved within a round
    (so a busy moment of the machine hits all of them alike), i cycling over `copies` inputs.

    Time is the calling thread's CPU time (time.thread_time): on a shared machine it leaves out
    the moments another process holds the core. Every kernel here runs on the calling thread
    (threads=1, and NumPy's BLAS is limited to one thread).
    """
    for i in range(copies):  # warm-up: page in every copy, load code
        for fn in fns:
            fn(i)
    best = [float("inf")] * len(fns)
    for r in range(reps):
        for k, fn in enumerate(fns):
            t0 = time.thread_time()
            fn(r % copies)
            best[k] = min(best[k], time.thread_time() - t0)
    return best


def numpy_attention(q, k, v):
    """Reference decode attention with NumPy: q (H, D), k/v (T, Hkv, D) -> (H, D)."""
    import numpy as np

    group = q.shape[0] // k.shape[1]
    kh = np.repeat(k.transpose(1, 0, 2), group, axis=0)  # (H, T, D)
    vh = np.repeat(v.transpose(1, 0, 2), group, axis=0)
    s = np.matmul(kh, q[:, :, None])[:, :, 0] / np.sqrt(q.shape[1])  # (H, T)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.matmul(p[:, None, :], vh)[:, 0, :]


def run(quick: bool = False, hot: bool = False) -> list[Row]:
    import numpy as np

    from llmfs import _kernels
    from llmfs import kernels as K

    rng = np.random.default_rng(0)
    scale = 0.4 if quick else 1.0  # fewer repetitions with --quick
    reps = lambda n: max(3, int(n * scale))  # noqa: E731
    working_set = 128e6  # bytes of weights cycled through by the memory-bound kernels

    def copies_for(nbytes: float) -> int:
        return 1 if hot else max(2, int(np.ceil(working_set / nbytes)))

    # best of 10 short runs: on a shared machine a neighbour on the same physical core can halve one run
    peak = max(_kernels._peak_gflops() for _ in range(10))
    rows: list[Row] = []

    for n in (1024,) if quick else (1024, 2048):
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        t, t_np = best_times([lambda i, a=a, b=b: K.matmul(a, b), lambda i, a=a, b=b: a @ b], 1, reps(20 if n == 1024 else 6))
        rows.append(Row("matmul", f"{n}x{n}x{n}", t, 2.0 * n**3, 3 * 4.0 * n * n, t_np, 0.9, peak))

    R = C = 4096
    n_f = copies_for(R * C * 4.0)
    ws = [rng.standard_normal((R, C), dtype=np.float32) for _ in range(n_f)]
    x = rng.standard_normal(C, dtype=np.float32)
    q8 = [K.quantize_q8_0(w) for w in ws]
    q4 = [K.quantize_q4_0(w) for w in ws]
    n_q8, n_q4 = copies_for(q8[0].nbytes), copies_for(q4[0].nbytes)
    q8 += [K.quantize_q8_0(ws[i % n_f] * np.float32(1 + i)) for i in range(len(q8), n_q8)]
    q4 += [K.quantize_q4_0(ws[i % n_f] * np.float32(1 + i)) for i in range(len(q4), n_q4)]
    t_mv, t_np, t_q8, t_q4, t_read = best_times(
        [
            lambda i: K.matvec(ws[i % n_f], x),
            lambda i: ws[i % n_f] @ x,
            lambda i: K.matvec_q8_0(q8[i % n_q8], x, C),
            lambda i: K.matvec_q4_0(q4[i % n_q4], x, C),
            lambda i: _kernels._read_gbps(ws[i % n_f].reshape(-1), 1),  # the streaming-read ceiling
        ],
        max(n_f, n_q8, n_q4),
        reps(200),
    )
    stream = R * C * 4.0 / t_read / 1e9
    # the quantized matvecs are compared with NumPy's float32 matvec of the same matrix
    rows.append(Row("matvec", f"{R}x{C}", t_mv, 0.0, R * C * 4.0, t_np, 0.95, stream))
    rows.append(Row("matvec_q8_0", f"{R}x{C}", t_q8, 0.0, float(q8[0].nbytes), t_np, 3.3, stream))
    rows.append(Row("matvec_q4_0", f"{R}x{C}", t_q4, 0.0, float(q4[0].nbytes), t_np, 6.0, stream))
    ws = q8 = q4 = []  # free the matrices before the attention rows

    H, D, T = 32, 64, 2048
    cache_bytes = 2.0 * T * H * D * 4
    n = copies_for(cache_bytes)
    caches = []
    for _ in range(n):
        c = K.KVCache(1, H, T, D)
        c.append(0, rng.standard_normal((T, H, D), dtype=np.float32), rng.standard_normal((T, H, D), dtype=np.float32))
        caches.append(c)
    q = rng.standard_normal((H, D), dtype=np.float32)
    t, t_np = best_times(
        [lambda i: K.attention_decode(q, caches[i], 0), lambda i: numpy_attention(q, caches[i].keys(0), caches[i].values(0))],
        n,
        reps(30),
    )
    rows.append(Row("attention_decode", f"{H}h x {D}d x {T}pos", t, 0.0, cache_bytes, t_np, None, stream))
    return rows


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table, text left-aligned in the first two columns and numbers right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (matmul 1024 only, shorter timing)")
    parser.add_argument("--hot", action="store_true", help="time memory-bound kernels on one cache-warm copy")
    args = parser.parse_args(argv)
    _one_blas_thread()

    from llmfs import _kernels

    feats = _kernels.cpu_features()
    rows = run(args.quick, args.hot)
    print(f"llmfs kernels vs NumPy {__import__('numpy').__version__}, one thread each "
          f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}); "
          f"avx2_fma={feats['avx2_fma']} avx512={feats['avx512']} "
          f"force_scalar={feats['force_scalar']} force_avx2={feats['force_avx2']}")
    print("paths: " + "; ".join(f"{k} {v}" for k, v in feats["paths"].items()))
    simd = {"avx512": "AVX-512", "avx2": "AVX2"}.get(feats["paths"]["matmul"], "no SIMD:")  # matmul's path
    print(f"limits of one core (measured now): {simd} FMA peak {rows[0].limit:.1f} GFLOP/s, "
          f"streaming read {rows[-1].limit:.1f} GB/s; "
          f"memory-bound rows timed {'hot (one copy)' if args.hot else 'cold (weights > 128 MB cycled, from DRAM)'}")
    print("times: best of interleaved runs, CPU time of the calling thread; quantized matvecs are compared")
    print("with NumPy's float32 matvec of the same 4096x4096 matrix; attention vs a NumPy implementation\n")
    print(table([r.cells() for r in rows], HEADER))
    missed = [f"{r.kernel} {r.shape}" for r in rows if r.target is not None and r.speedup < r.target]
    print("\nall targets met" if not missed else f"\ntargets NOT met: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
