"""The C++ inference kernels (``cpp_kernels/``, compiled by ``make install`` into ``llmfs._kernels``).

A thin Python layer: it documents shapes and dtypes. Every check happens in C++ (so the
compiled module is just as safe when called directly): wrong Python types or dtypes raise
``TypeError``, wrong ranks, shapes, strides, sizes or indices raise ``ValueError``, each with
a message saying what was expected. Nothing is converted silently: arrays must be float32
(uint8 for quantized weights) and C-contiguous; use ``np.ascontiguousarray(x, np.float32)``.

Shapes (all arrays numpy, float32 unless stated)::

    matmul(a (M, K), b (K, N))                 -> (M, N)
    matvec(w (rows, cols), x (cols,))          -> (rows,)
    quantize_q8_0(w (rows, cols))              -> uint8 (rows, cols/32 * 34)   cols % 32 == 0
    quantize_q4_0(w (rows, cols))              -> uint8 (rows, cols/32 * 18)
    dequantize_q8_0(q, cols), dequantize_q4_0  -> (rows, cols)
    matvec_q8_0(q, x (cols,), cols)            -> (rows,)     (matvec_q4_0 alike)
    KVCache(n_layers, n_kv_heads, max_seq_len, head_dim)
        .append(layer, k, v)   k, v: (n_kv_heads, head_dim) or (n_pos, n_kv_heads, head_dim)
        .keys(layer), .values(layer) -> read-only views (length, n_kv_heads, head_dim)
    attention_decode(q (n_heads, head_dim), cache, layer) -> (n_heads, head_dim)

Each kernel has an AVX2 path, picked at run time when the CPU has AVX2+FMA+F16C, and a
scalar reference path: ``with scalar_path():`` (or ``LLMFS_FORCE_SCALAR=1``) forces the latter.
``matmul``, ``matvec`` and ``matvec_q4_0`` also have an AVX-512 path, taken when the CPU has AVX-512 F, BW,
VL and VNNI (AMD Zen 4 and later, Intel Ice Lake and later); ``with avx2_path():`` (or
``LLMFS_FORCE_AVX2=1``) keeps it out.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

try:
    from llmfs import _kernels
except ImportError as err:  # pragma: no cover - only when the build step was skipped
    raise ImportError(
        "the C++ module llmfs._kernels is not built. Run `make install` (or `pip install -e .`) "
        "in the repository, then restart the kernel."
    ) from err

__all__ = [
    "KVCache",
    "Q4_0_BYTES",
    "Q8_0_BYTES",
    "QK",
    "attention_decode",
    "avx2_path",
    "cpu_features",
    "dequantize_q4_0",
    "dequantize_q8_0",
    "matmul",
    "matvec",
    "matvec_q4_0",
    "matvec_q8_0",
    "quantize_q4_0",
    "quantize_q8_0",
    "scalar_path",
]

QK = 32  #: values per quantization block
Q8_0_BYTES = 34  #: bytes of ggml's block_q8_0: fp16 scale + 32 int8
Q4_0_BYTES = 18  #: bytes of ggml's block_q4_0: fp16 scale + 16 bytes of nibbles

KVCache = _kernels.KVCache
KVCache.__doc__ = """KVCache(n_layers, n_kv_heads, max_seq_len, head_dim): every layer's keys and values.

One preallocated, 64-byte aligned block of ``2 * n_layers * max_seq_len * n_kv_heads * head_dim``
float32 (``nbytes``), laid out ``[layer][k|v][position][kv head][dim]``.

- ``append(layer, k, v)``: copy one position, k and v of shape (n_kv_heads, head_dim), or
  several, (n_pos, n_kv_heads, head_dim), after the filled part of ``layer``; O(1) per
  position. More than ``max_seq_len`` positions raises ValueError.
- ``keys(layer)`` / ``values(layer)``: read-only numpy views (length, n_kv_heads, head_dim)
  of the filled part, no copy (they keep the cache alive).
- ``length(layer)``: positions in that layer; ``len(cache)``: positions present in every layer.
- ``reset()``: forget every position (the memory stays allocated).
"""


def cpu_features() -> dict:
    """What the CPU offers (detected at run time), whether the scalar path is forced, and the
    path each kernel takes now (``paths``)."""
    return dict(_kernels.cpu_features())


@contextmanager
def scalar_path(enabled: bool = True) -> Iterator[None]:
    """Within the block, every kernel runs its scalar reference code (restored afterwards).

    The switch is process-wide (all threads). The environment variable ``LLMFS_FORCE_SCALAR=1``
    forces the scalar path for a whole process, whatever this switch says.
    """
    previous = _kernels._set_force_scalar(enabled)
    try:
        yield
    finally:
        _kernels._set_force_scalar(previous)


@contextmanager
def avx2_path(enabled: bool = True) -> Iterator[None]:
    """Within the block, kernels with an AVX-512 path take their AVX2 one (restored afterwards).

    Process-wide, like ``scalar_path``; ``LLMFS_FORCE_AVX2=1`` does it for a whole process.
    """
    previous = _kernels._set_force_avx2(enabled)
    try:
        yield
    finally:
        _kernels._set_force_avx2(previous)


def matmul(a: np.ndarray, b: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """``a @ b``: a (M, K) float32, b (K, N) float32 -> (M, N) float32, any sizes.

    Blocked, packed GEMM with an AVX2 6x16 micro-kernel (see cpp_kernels/src/gemm.h);
    ``threads`` splits the rows (or columns) of the result.
    """
    return _kernels.matmul(a, b, threads=threads)


def matvec(w: np.ndarray, x: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """``w @ x``: w (rows, cols) float32, x (cols,) float32 -> (rows,) float32."""
    return _kernels.matvec(w, x, threads=threads)


def quantize_q8_0(w: np.ndarray) -> np.ndarray:
    """w (rows, cols) float32, cols % 32 == 0 -> uint8 (rows, cols/32 * 34): ggml's block_q8_0.

    Per block of 32: d = max|x| / 127 (stored fp16), q = round(x / d) (int8). Byte-identical
    to ggml / ``gguf.quants``. NaN or infinity raise ValueError.
    """
    return _kernels.quantize_q8_0(w)


def quantize_q4_0(w: np.ndarray) -> np.ndarray:
    """w (rows, cols) float32, cols % 32 == 0 -> uint8 (rows, cols/32 * 18): ggml's block_q4_0.

    Per block of 32: d = (value of largest magnitude) / -8 (fp16), q = min(15, trunc(x/d + 8.5))
    in 0..15; byte j holds q[j] (low nibble) and q[j + 16] (high nibble), as in ggml.
    """
    return _kernels.quantize_q4_0(w)


def dequantize_q8_0(q: np.ndarray, cols: int) -> np.ndarray:
    """q uint8 (rows, cols/32 * 34) -> float32 (rows, cols): d * q."""
    return _kernels.dequantize_q8_0(q, cols)


def dequantize_q4_0(q: np.ndarray, cols: int) -> np.ndarray:
    """q uint8 (rows, cols/32 * 18) -> float32 (rows, cols): d * (q - 8)."""
    return _kernels.dequantize_q4_0(q, cols)


def matvec_q8_0(q: np.ndarray, x: np.ndarray, cols: int, *, threads: int = 1) -> np.ndarray:
    """Q8_0 weights q (rows, cols/32 * 34) times x (cols,) float32 -> (rows,) float32.

    As in ggml, x is first quantized to Q8_0 blocks (so the inner loop is int8 x int8); the
    result equals ``dequantize(q) @ dequantize(quantize(x))`` up to float rounding.
    """
    return _kernels.matvec_q8_0(q, x, cols, threads=threads)


def matvec_q4_0(q: np.ndarray, x: np.ndarray, cols: int, *, threads: int = 1) -> np.ndarray:
    """Q4_0 weights q (rows, cols/32 * 18) times x (cols,) float32 -> (rows,) float32.

    x is quantized to Q8_0 first, as in ggml's Q4_0 x Q8_0 dot product.
    """
    return _kernels.matvec_q4_0(q, x, cols, threads=threads)


def attention_decode(q: np.ndarray, cache: KVCache, layer: int) -> np.ndarray:
    """One decode step: q (n_heads, head_dim) against the cached keys and values of ``layer``.

    out[h] = softmax(q[h] · K[:, kv]ᵀ / sqrt(head_dim)) · V[:, kv] with kv = h // (n_heads //
    n_kv_heads) (grouped-query attention); every cached position is visible (the new query
    is the last position; append its k and v first). Returns (n_heads, head_dim) float32.
    """
    return _kernels.attention_decode(q, cache, layer)
