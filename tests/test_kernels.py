"""The C++ kernels (llmfs.kernels) against NumPy, gguf's reference quantizer and each other.

Every kernel is run on both of its paths, the AVX2 one (where the CPU has it) and the scalar
reference one (``kernels.scalar_path()``), on awkward sizes: 1, 31, 33, 257, ... matmul, matvec
and matvec_q4_0 have a third path, AVX-512 (where the CPU has it), tested against the other two
(``kernels.avx2_path()`` keeps it out).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfs import kernels as K

gguf_quants = pytest.importorskip("gguf.quants")
from gguf import GGMLQuantizationType  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)
PATHS = ["fast", "scalar"]


@pytest.fixture(params=PATHS)
def path(request):
    """Run the test once on the fastest path and once on the scalar reference path."""
    if request.param == "fast":
        yield request.param
    else:
        with K.scalar_path():
            yield request.param


PATHS3 = ["fast", "avx2", "scalar"]  # for the kernels with an AVX-512 path (matmul, matvec, matvec_q4_0)


@contextmanager
def on_path(name):
    """Run on one path: "fast" (the best this CPU has), "avx2" (AVX-512 kept out) or "scalar"."""
    with K.avx2_path(name == "avx2"), K.scalar_path(name == "scalar"):
        yield


@pytest.fixture(params=PATHS3)
def path3(request):
    """The same as `path` for the kernels with an AVX-512 path: fast, AVX2 and scalar."""
    with on_path(request.param):
        yield request.param


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def assert_close_products(out, a, b, k):
    """out ~ a @ b within the classic bound |err| <= k * eps * (|a| @ |b|) (a, b float32)."""
    ref = a.astype(np.float64) @ b.astype(np.float64)
    bound = max(k, 1) * EPS32 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-30
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.all(np.abs(out - ref) <= bound), float(np.max(np.abs(out - ref) - bound))


# ---------------------------------------------------------------- cpu features


def test_cpu_features_report_every_kernel_path():
    f = K.cpu_features()
    assert isinstance(f["avx2_fma"], bool) and isinstance(f["avx512f"], bool)
    assert set(f["paths"]) >= {"matmul", "matvec", "matvec_q8_0", "matvec_q4_0", "attention_decode", "quantize"}
    with K.scalar_path():
        g = K.cpu_features()
        assert g["force_scalar"] is True
        assert all(p.startswith("scalar") for p in g["paths"].values())
    assert K.cpu_features()["force_scalar"] == f["force_scalar"]
    with K.avx2_path():
        g = K.cpu_features()
        assert g["force_avx2"] is True
        assert not any(p.startswith("avx512") for p in g["paths"].values())
        assert g["paths"]["matvec_q4_0"].startswith("avx2" if f["avx2_fma"] else "scalar")
    assert f["paths"]["matvec_q4_0"].startswith("avx512" if f["avx512"] else "avx2" if f["avx2_fma"] else "scalar")


def test_environment_variable_forces_the_scalar_path(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rand(rng, 7, 33), rand(rng, 33, 5)
    monkeypatch.setenv("LLMFS_FORCE_SCALAR", "1")
    assert K.cpu_features()["force_scalar"] is True
    assert_close_products(K.matmul(a, b), a, b, 33)
    monkeypatch.setenv("LLMFS_FORCE_SCALAR", "0")
    assert K.cpu_features()["force_scalar"] is False
    monkeypatch.setenv("LLMFS_FORCE_AVX2", "1")
    assert K.cpu_features()["force_avx2"] is True
    assert not K.cpu_features()["paths"]["matvec_q4_0"].startswith("avx512")


# ---------------------------------------------------------------- matmul / matvec

MATMUL_SHAPES = [
    (1, 1, 1), (1, 31, 33), (31, 33, 257), (33, 1, 31), (257, 31, 1), (6, 16, 256), (7, 17, 257),
    (12, 32, 512), (100, 200, 300), (145, 33, 260), (5, 4081, 3),
]


@pytest.mark.parametrize("m,n,k", MATMUL_SHAPES)
def test_matmul_matches_numpy(path3, m, n, k):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a, b = rand(rng, m, k), rand(rng, k, n)
    assert_close_products(K.matmul(a, b), a, b, k)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_matmul_threads_give_the_same_result(threads):
    rng = np.random.default_rng(threads)
    for m, n, k in [(67, 45, 300), (5, 130, 70), (300, 7, 20)]:  # tall, wide and in between
        a, b = rand(rng, m, k), rand(rng, k, n)
        assert np.array_equal(K.matmul(a, b, threads=threads), K.matmul(a, b))


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (3, 0, 4), (4, 5, 0), (0, 0, 0)])
def test_matmul_empty_dimensions(m, n, k):
    out = K.matmul(np.ones((m, k), np.float32), np.ones((k, n), np.float32))
    assert out.shape == (m, n) and not out.any()


@settings(max_examples=90, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 300), st.sampled_from(PATHS3))
def test_matmul_random_shapes(m, n, k, path):
    """Every edge tile and every depth, odd or even (the AVX-512 kernel takes k two at a time)."""
    rng = np.random.default_rng(m + 100 * n + 10000 * k)
    a, b = rand(rng, m, k), rand(rng, k, n)
    with on_path(path):
        assert_close_products(K.matmul(a, b), a, b, k)


MATVEC_SHAPES = [(1, 1), (1, 31), (31, 1), (33, 257), (257, 33), (5, 4096), (4, 16), (9, 17)]


@pytest.mark.parametrize("rows,cols", MATVEC_SHAPES)
def test_matvec_matches_numpy(path3, rows, cols):
    rng = np.random.default_rng(rows * 1000 + cols)
    w, x = rand(rng, rows, cols), rand(rng, cols)
    assert_close_products(K.matvec(w, x), w, x, cols)
    assert np.array_equal(K.matvec(w, x, threads=3), K.matvec(w, x))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 13), st.integers(1, 300), st.integers(0, 20), st.sampled_from(PATHS3))
def test_matvec_at_any_alignment(rows, cols, skip, path):
    """W starting anywhere in a cache line (a row slice of a bigger array, still C-contiguous):
    the AVX-512 kernel aligns its loads to the first row, so every lead and tail length occurs."""
    rng = np.random.default_rng(rows * 1000 + cols + 7 * skip)
    w = rand(rng, rows * cols + skip)[skip:].reshape(rows, cols)
    x = rand(rng, cols)
    with on_path(path):
        assert_close_products(K.matvec(w, x), w, x, cols)


def test_matvec_empty_dimensions():
    assert K.matvec(np.ones((0, 7), np.float32), np.ones(7, np.float32)).shape == (0,)
    assert not K.matvec(np.ones((3, 0), np.float32), np.ones(0, np.float32)).any()


# ---------------------------------------------------------------- Q8_0 / Q4_0 (ggml compatible)

FORMATS = {
    "q8_0": (K.quantize_q8_0, K.dequantize_q8_0, K.matvec_q8_0, GGMLQuantizationType.Q8_0, 34),
    "q4_0": (K.quantize_q4_0, K.dequantize_q4_0, K.matvec_q4_0, GGMLQuantizationType.Q4_0, 18),
}
QUANT_SHAPES = [(1, 32), (3, 64), (31, 96), (257, 32), (2, 4096), (5, 288)]


def special_rows() -> np.ndarray:
    """Blocks that test the rounding rules: zeros, one value, exact ties, tiny, huge, negatives."""
    rows = [
        np.zeros(32),
        np.eye(1, 32, 5)[0] * -3.0,
        np.arange(32) - 15.5,  # ties for Q8_0 once scaled
        (np.arange(32) - 16) * 0.5,  # ties x/d + 8.5 for Q4_0
        np.full(32, 1e-30),
        np.full(32, 6e4) * np.sign(np.arange(32) - 10.5),
        np.linspace(-1, 1, 32) ** 3,
        np.r_[np.full(31, 0.25), -1.0],  # the largest magnitude is negative
        np.r_[np.full(16, 1.0), np.full(16, -1.0)],
        np.r_[127.0, -126.5, np.arange(30) - 14.5],  # Q8_0: d = 1 exactly, so every x/d is a tie
    ]
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rows,cols", QUANT_SHAPES)
def test_quantize_is_byte_identical_to_ggml(path, fmt, rows, cols):
    quantize, dequantize, _, qtype, nbytes = FORMATS[fmt]
    rng = np.random.default_rng(rows * 7 + cols)
    w = rand(rng, rows, cols, scale=rng.uniform(0.01, 100))
    q = quantize(w)
    assert q.dtype == np.uint8 and q.shape == (rows, cols // 32 * nbytes)
    assert np.array_equal(q, gguf_quants.quantize(w, qtype))
    assert np.array_equal(dequantize(q, cols), gguf_quants.dequantize(q, qtype))


@pytest.mark.parametrize("fmt", FORMATS)
def test_quantize_rounding_rules_on_special_blocks(path, fmt):
    quantize, dequantize, _, qtype, _ = FORMATS[fmt]
    w = special_rows()
    assert np.array_equal(quantize(w), gguf_quants.quantize(w, qtype))
    w2 = w.reshape(1, -1)  # the same blocks as one long row
    assert np.array_equal(quantize(w2), gguf_quants.quantize(w2, qtype))
    assert np.array_equal(dequantize(quantize(w), 32), gguf_quants.dequantize(quantize(w), qtype))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1e-30, 1e-3, 1.0, 127.0, 6e4]))
def test_fast_q8_0_quantizer_gives_the_reference_bytes(seed, scale):
    """The AVX2 quantizer (also used for x in matvec_*) rounds exactly like the scalar reference,
    ties included: the first row's blocks have d = 1, so their half-integers are exact ties."""
    rng = np.random.default_rng(seed)
    w = rand(rng, 3, 96, scale=scale)
    w[0] = np.round(rng.uniform(-127, 127, 96) * 2) / 2
    w[0, ::32] = 127.0
    fast = K.quantize_q8_0(w)
    with K.scalar_path():
        assert np.array_equal(fast, K.quantize_q8_0(w))


def test_quantize_error_is_within_half_a_step():
    rng = np.random.default_rng(1)
    w = rand(rng, 64, 256)
    blocks = np.abs(w.reshape(-1, 32)).max(axis=1, keepdims=True)
    fp16 = 2.0**-11  # relative rounding of the stored scale
    err8 = np.abs(K.dequantize_q8_0(K.quantize_q8_0(w), 256) - w).reshape(-1, 32)
    assert np.all(err8 <= blocks / 127 * (0.5 + 127 * fp16) * 1.001)  # half a step
    err4 = np.abs(K.dequantize_q4_0(K.quantize_q4_0(w), 256) - w).reshape(-1, 32)
    assert np.all(err4 <= blocks / 8 * (1 + 8 * fp16) * 1.001)  # one step (q = 15 is clamped)


def quantized_reference(fmt, q, x, cols):
    """dequantize(q) @ dequantize(quantize_q8_0(x)): what ggml computes, in float64."""
    _, dequantize, *_ = FORMATS[fmt]
    wd = dequantize(q, cols).astype(np.float64)
    xd = gguf_quants.dequantize(gguf_quants.quantize(x[None], GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0)[0]
    return wd @ xd, np.abs(wd) @ np.abs(xd)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rows,cols", [(1, 32), (3, 64), (7, 288), (33, 800), (9, 2048), (64, 4096), (5, 256)])
def test_quantized_matvec_matches_dequantized_product(path3, fmt, rows, cols):
    quantize, _, matvec_q, *_ = FORMATS[fmt]
    rng = np.random.default_rng(rows + cols)
    w, x = rand(rng, rows, cols), rand(rng, cols)
    q = quantize(w)
    ref, mag = quantized_reference(fmt, q, x, cols)
    y = matvec_q(q, x, cols)
    assert y.dtype == np.float32 and y.shape == (rows,)
    assert np.all(np.abs(y - ref) <= 4 * (cols // 32 + 2) * EPS32 * mag + 1e-30)
    assert np.array_equal(matvec_q(q, x, cols, threads=3), y)
    # and it is close to the float product (quantization error only)
    assert np.allclose(y, w.astype(np.float64) @ x, rtol=0.2 if fmt == "q4_0" else 0.05, atol=0.2 * np.sqrt(cols))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fast", ["fast", "avx2"])
def test_quantized_matvec_handles_any_byte_pattern(fmt, fast):
    """Weights not made by the quantizer (e.g. int8 -128, fp16 scales of every kind) still give
    the scalar result on the fast path: the integer part is exact, only float rounding differs."""
    _, _, matvec_q, _, nbytes = FORMATS[fmt]
    rng = np.random.default_rng(2)
    rows, cols = 13, 512
    q = rng.integers(0, 256, size=(rows, cols // 32 * nbytes), dtype=np.uint8)
    blocks = q.reshape(rows, -1, nbytes)
    blocks[..., 0] = rng.integers(0, 256, size=blocks.shape[:2])
    blocks[..., 1] = rng.choice([0x00, 0x04, 0x1C, 0x2C, 0x3B, 0x80, 0x84], size=blocks.shape[:2])  # 0, tiny, normal
    if fmt == "q8_0":
        blocks[:, ::3, 2:] = 0x80  # int8 -128
    x = rand(rng, cols)
    with K.avx2_path(fast == "avx2"):
        y = matvec_q(q, x, cols)
    with K.scalar_path():
        ys = matvec_q(q, x, cols)
    ref, mag = quantized_reference(fmt, q, x, cols)
    assert np.all(np.isfinite(y))
    assert np.all(np.abs(y - ys) <= 8 * (cols // 32 + 2) * EPS32 * mag + 1e-30)
    assert np.all(np.abs(y - ref) <= 8 * (cols // 32 + 2) * EPS32 * mag + 1e-30)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 60), st.integers(0, 2**32 - 1), st.sampled_from([1e-3, 1.0, 300.0]))
def test_quantized_matvec_paths_agree(rows, blocks, seed, scale):
    """Random shapes (every tail length: groups of 8 blocks for AVX2, 16 for AVX-512): the fast,
    AVX2 and scalar paths give the same products up to float rounding, and threads change nothing."""
    rng = np.random.default_rng(seed)
    cols = 32 * blocks
    w, x = rand(rng, rows, cols, scale=scale), rand(rng, cols)
    for fmt in FORMATS:
        quantize, _, matvec_q, *_ = FORMATS[fmt]
        q = quantize(w)
        _, mag = quantized_reference(fmt, q, x, cols)
        with K.scalar_path():
            ys = matvec_q(q, x, cols)
        with K.avx2_path():
            y2 = matvec_q(q, x, cols)
        y = matvec_q(q, x, cols)
        tol = 4 * (blocks + 2) * EPS32 * mag + 1e-30
        assert np.all(np.abs(y - ys) <= tol) and np.all(np.abs(y2 - ys) <= tol)
        assert np.array_equal(matvec_q(q, x, cols, threads=2), y)


def test_quantize_rejects_nan_and_infinity():
    w = np.ones((2, 32), np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        w[1, 7] = bad
        for fn in (K.quantize_q8_0, K.quantize_q4_0):
            with pytest.raises(ValueError, match="NaN or infinity"):
                fn(w)
    x = np.ones(32, np.float32)
    x[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        K.matvec_q8_0(K.quantize_q8_0(np.ones((1, 32), np.float32)), x, 32)


# ---------------------------------------------------------------- KV cache


def test_kvcache_layout_views_and_errors():
    c = K.KVCache(3, 2, 10, 4)
    assert (c.n_layers, c.n_kv_heads, c.max_seq_len, c.head_dim) == (3, 2, 10, 4)
    assert c.nbytes == 3 * 2 * 10 * 2 * 4 * 4
    assert len(c) == 0 and c.keys(1).shape == (0, 2, 4)
    rng = np.random.default_rng(0)
    k1, v1 = rand(rng, 2, 4), rand(rng, 2, 4)
    c.append(1, k1, v1)  # one position
    k3, v3 = rand(rng, 3, 2, 4), rand(rng, 3, 2, 4)
    c.append(1, k3, v3)  # three more at once
    assert c.length(1) == 4 and c.length(0) == 0 and len(c) == 0  # len: positions in every layer
    keys, values = c.keys(1), c.values(1)
    assert keys.shape == (4, 2, 4) and keys.flags.c_contiguous and not keys.flags.writeable
    assert np.array_equal(keys, np.concatenate([k1[None], k3])) and np.array_equal(values, np.concatenate([v1[None], v3]))
    assert c.keys(0).ctypes.data % 64 == 0  # one aligned block
    # views, not copies: a later append shows through a fresh view of the same memory
    assert np.shares_memory(keys, c.keys(1))
    with pytest.raises(ValueError):
        keys[0, 0, 0] = 1.0  # read-only
    for layer in range(3):
        if layer != 1:
            c.append(layer, rand(rng, 4, 2, 4), rand(rng, 4, 2, 4))
    assert len(c) == 4
    with pytest.raises(ValueError, match="no room"):
        c.append(0, rand(rng, 7, 2, 4), rand(rng, 7, 2, 4))
    assert c.length(0) == 4  # a refused append changes nothing
    c.append(0, rand(rng, 6, 2, 4), rand(rng, 6, 2, 4))  # exactly full
    with pytest.raises(ValueError, match="no room"):
        c.append(0, k1, v1)
    c.reset()
    assert len(c) == 0 and c.keys(0).shape == (0, 2, 4) and c.nbytes == 3 * 2 * 10 * 2 * 4 * 4


def test_kvcache_views_keep_the_cache_alive():
    c = K.KVCache(1, 1, 4, 2)
    c.append(0, np.ones((1, 2), np.float32), np.full((1, 2), 2.0, np.float32))
    v = c.values(0)
    del c
    gc.collect()
    assert np.array_equal(v, [[[2.0, 2.0]]])


def test_kvcache_append_is_independent_of_length():
    """O(1) append: appending into a long cache copies only the new position."""
    c = K.KVCache(1, 8, 4096, 64)
    row = np.ones((8, 64), np.float32)
    for _ in range(4096):
        c.append(0, row, row)
    assert len(c) == 4096 and c.keys(0).sum() == 4096 * 8 * 64


# ---------------------------------------------------------------- attention


def reference_attention(q, k, v):
    q, k, v = (t.astype(np.float64) for t in (q, k, v))
    group = q.shape[0] // k.shape[1]
    out = np.empty_like(q)
    for h in range(q.shape[0]):
        s = k[:, h // group, :] @ q[h] / np.sqrt(q.shape[1])
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ v[:, h // group, :]
    return out


@pytest.mark.parametrize("n_heads,n_kv", [(1, 1), (4, 4), (8, 2), (6, 3), (32, 8)])
@pytest.mark.parametrize("head_dim,T", [(64, 257), (7, 33), (1, 5), (65, 1), (16, 31)])
def test_attention_decode_matches_numpy(path, n_heads, n_kv, head_dim, T):
    rng = np.random.default_rng(n_heads * 100 + head_dim * 10 + T)
    c = K.KVCache(2, n_kv, T + 3, head_dim)
    k, v = rand(rng, T, n_kv, head_dim), rand(rng, T, n_kv, head_dim)
    c.append(1, k, v)
    q = rand(rng, n_heads, head_dim, scale=2.0)
    out = K.attention_decode(q, c, 1)
    assert out.shape == (n_heads, head_dim) and out.dtype == np.float32
    assert np.allclose(out, reference_attention(q, k, v), rtol=1e-4, atol=1e-5)


def test_attention_is_stable_for_large_scores():
    c = K.KVCache(1, 1, 3, 4)
    c.append(0, np.array([[[100, 0, 0, 0]], [[-100, 0, 0, 0]], [[0, 0, 0, 0]]], np.float32),
             np.array([[[1, 0, 0, 0]], [[0, 1, 0, 0]], [[0, 0, 1, 0]]], np.float32))
    out = K.attention_decode(np.array([[100, 0, 0, 0]], np.float32), c, 0)
    assert np.allclose(out, [[1, 0, 0, 0]], atol=1e-6)


def test_attention_paths_agree():
    rng = np.random.default_rng(5)
    c = K.KVCache(1, 4, 300, 64)
    c.append(0, rand(rng, 300, 4, 64), rand(rng, 300, 4, 64))
    q = rand(rng, 16, 64)
    fast = K.attention_decode(q, c, 0)
    with K.scalar_path():
        slow = K.attention_decode(q, c, 0)
    assert np.allclose(fast, slow, rtol=1e-5, atol=1e-6)
