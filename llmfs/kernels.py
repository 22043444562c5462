"""The C++ inference kernels (``cpp_kernels/``, compiled by ``make install`` into ``llmfs._kernels``).

A thin Python layer: it documents shapes and dtypes. Every check happens in C++ (so the
compiled module is just as safe when called directly): wrong Python types or dtypes raise
``TypeError``, wrong ranks, shapes, strides, sizes, indices or paths raise ``ValueError``, each with
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

Paths. Every kernel takes ``path=``, one of ``"auto"`` (the default), ``"scalar"``, ``"avx2"``,
``"avx512"``. Each has a scalar reference path; ``matmul``, ``matvec``, ``matvec_q8_0``,
``matvec_q4_0``, ``quantize_q8_0`` and ``attention_decode`` an AVX2 one (CPU with AVX2, FMA and
F16C); ``matmul``, ``matvec`` and ``matvec_q4_0`` also an AVX-512 one (AVX-512 F, BW, VL and VNNI:
AMD Zen 4 and later, Intel Ice Lake and later). ``"auto"`` takes the widest one the kernel and the
CPU have, decided at run time; ``LLMFS_FORCE_AVX2=1`` keeps AVX-512 out of that choice and
``LLMFS_FORCE_SCALAR=1`` makes it scalar, for a whole process. A path named explicitly is taken as
named, or refused with ValueError where the kernel or the CPU lacks it (never a crash).
``cpu_features()`` reports what ``"auto"`` picks for each kernel and what each can be asked for.
"""

from __future__ import annotations

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
    "PATHS",
    "Q4_0_BYTES",
    "Q8_0_BYTES",
    "QK",
    "attention_decode",
    "cpu_features",
    "dequantize_q4_0",
    "dequantize_q8_0",
    "matmul",
    "matvec",
    "matvec_q4_0",
    "matvec_q8_0",
    "quantize_q4_0",
    "quantize_q8_0",
]

QK = 32  #: values per quantization block
Q8_0_BYTES = 34  #: bytes of ggml's block_q8_0: fp16 scale + 32 int8
Q4_0_BYTES = 18  #: bytes of ggml's block_q4_0: fp16 scale + 16 bytes of nibbles
PATHS = ("auto", "scalar", "avx2", "avx512")  #: the values of every kernel's ``path=``

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
    """What the CPU offers (detected at run time) and how the kernels use it.

    - ``avx2_fma``, ``avx512f``, ``avx512``: the CPU's features (``avx512``: F, BW, VL and VNNI);
    - ``force_scalar``, ``force_avx2``: whether ``LLMFS_FORCE_SCALAR`` / ``LLMFS_FORCE_AVX2`` are set;
    - ``paths``: for each kernel, the path ``path="auto"`` takes now (``"scalar"``, ``"avx2"`` or
      ``"avx512"``), from the same function the kernels call;
    - ``available``: for each kernel, the paths it can be asked for on this CPU, scalar first.
    """
    f = dict(_kernels.cpu_features())
    f["paths"], f["available"] = dict(f["paths"]), {k: tuple(v) for k, v in f["available"].items()}
    return f


def matmul(a: np.ndarray, b: np.ndarray, *, threads: int = 1, path: str = "auto") -> np.ndarray:
    """``a @ b``: a (M, K) float32, b (K, N) float32 -> (M, N) float32, any sizes.

    Blocked, packed GEMM with an AVX2 6x16 micro-kernel (see cpp_kernels/src/gemm.h);
    ``threads`` splits the rows (or columns) of the result. ``path``: scalar, avx2, avx512.
    """
    return _kernels.matmul(a, b, threads=threads, path=path)


def matvec(w: np.ndarray, x: np.ndarray, *, threads: int = 1, path: str = "auto") -> np.ndarray:
    """``w @ x``: w (rows, cols) float32, x (cols,) float32 -> (rows,) float32. ``path``: scalar, avx2, avx512."""
    return _kernels.matvec(w, x, threads=threads, path=path)


def quantize_q8_0(w: np.ndarray, *, path: str = "auto") -> np.ndarray:
    """w (rows, cols) float32, cols % 32 == 0 -> uint8 (rows, cols/32 * 34): ggml's block_q8_0.

    Per block of 32: d = max|x| / 127 (stored fp16), q = round(x / d) (int8). Byte-identical
    to ggml / ``gguf.quants``. NaN or infinity raise ValueError. ``path``: scalar, avx2 (same bytes).
    """
    return _kernels.quantize_q8_0(w, path=path)


def quantize_q4_0(w: np.ndarray, *, path: str = "auto") -> np.ndarray:
    """w (rows, cols) float32, cols % 32 == 0 -> uint8 (rows, cols/32 * 18): ggml's block_q4_0.

    Per block of 32: d = (value of largest magnitude) / -8 (fp16), q = min(15, trunc(x/d + 8.5))
    in 0..15; byte j holds q[j] (low nibble) and q[j + 16] (high nibble), as in ggml.
    ``path``: scalar only.
    """
    return _kernels.quantize_q4_0(w, path=path)


def dequantize_q8_0(q: np.ndarray, cols: int, *, path: str = "auto") -> np.ndarray:
    """q uint8 (rows, cols/32 * 34) -> float32 (rows, cols): d * q. ``path``: scalar only."""
    return _kernels.dequantize_q8_0(q, cols, path=path)


def dequantize_q4_0(q: np.ndarray, cols: int, *, path: str = "auto") -> np.ndarray:
    """q uint8 (rows, cols/32 * 18) -> float32 (rows, cols): d * (q - 8). ``path``: scalar only."""
    return _kernels.dequantize_q4_0(q, cols, path=path)


def matvec_q8_0(q: np.ndarray, x: np.ndarray, cols: int, *, threads: int = 1, path: str = "auto") -> np.ndarray:
    """Q8_0 weights q (rows, cols/32 * 34) times x (cols,) float32 -> (rows,) float32.

    As in ggml, x is first quantized to Q8_0 blocks (so the inner loop is int8 x int8); the
    result equals ``dequantize(q) @ dequantize(quantize(x))`` up to float rounding.
    ``path``: scalar, avx2.
    """
    return _kernels.matvec_q8_0(q, x, cols, threads=threads, path=path)


def matvec_q4_0(q: np.ndarray, x: np.ndarray, cols: int, *, threads: int = 1, path: str = "auto") -> np.ndarray:
    """Q4_0 weights q (rows, cols/32 * 18) times x (cols,) float32 -> (rows,) float32.

    x is quantized to Q8_0 first, as in ggml's Q4_0 x Q8_0 dot product. ``path``: scalar, avx2,
    avx512 (VNNI).
    """
    return _kernels.matvec_q4_0(q, x, cols, threads=threads, path=path)


def attention_decode(q: np.ndarray, cache: KVCache, layer: int, *, path: str = "auto") -> np.ndarray:
    """One decode step: q (n_heads, head_dim) against the cached keys and values of ``layer``.

    out[h] = softmax(q[h] · K[:, kv]ᵀ / sqrt(head_dim)) · V[:, kv] with kv = h // (n_heads //
    n_kv_heads) (grouped-query attention); every cached position is visible (the new query
    is the last position; append its k and v first). Returns (n_heads, head_dim) float32.
    ``path``: scalar, avx2.
    """
    return _kernels.attention_decode(q, cache, layer, path=path)
