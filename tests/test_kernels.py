"""The C++ kernels (llmfs.kernels) against NumPy, gguf's reference quantizer and each other.

Every kernel is run on every path it can take on this CPU (``path="scalar"``, ``"avx2"``,
``"avx512"``: ``cpu_features()["available"]``), on awkward sizes: 1, 31, 33, 257, ...; the
automatic choice (``path="auto"``) is checked to run the path ``cpu_features()`` reports.
"""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfs import kernels as K

gguf_quants = pytest.importorskip("gguf.quants")
from gguf import GGMLQuantizationType  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)
AVAILABLE = K.cpu_features()["available"]  # kernel -> the paths it can take on this CPU, scalar first


def on_paths(kernel):
    """Run the test once per path `kernel` can take here (the argument `path`)."""
    return pytest.mark.parametrize("path", AVAILABLE[kernel])


def kernel_paths(prefix):
    """(fmt, path) for the Q8_0 and Q4_0 versions of a kernel, e.g. "matvec_": every path of each."""
    return [(fmt, path) for fmt in ("q8_0", "q4_0") for path in AVAILABLE[prefix + fmt]]


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def assert_close_products(out, a, b, k):
    """out ~ a @ b within the classic bound |err| <= k * eps * (|a| @ |b|) (a, b float32)."""
    ref = a.astype(np.float64) @ b.astype(np.float64)
    bound = max(k, 1) * EPS32 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-30
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.all(np.abs(out - ref) <= bound), float(np.max(np.abs(out - ref) - bound))


# ---------------------------------------------------------------- cpu features


def set_environment(monkeypatch, env):
    """Exactly the LLMFS_FORCE_* variables in `env` (whatever the test run itself was given)."""
    for name in ("LLMFS_FORCE_AVX2", "LLMFS_FORCE_SCALAR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


KERNELS = {"matmul", "matvec", "quantize_q8_0", "quantize_q4_0", "dequantize_q8_0", "dequantize_q4_0", "matvec_q8_0",
           "matvec_q4_0", "attention_decode"}


@pytest.mark.parametrize("env", [{}, {"LLMFS_FORCE_AVX2": "1"}, {"LLMFS_FORCE_SCALAR": "1"}, {"LLMFS_FORCE_SCALAR": "0"}])
def test_cpu_features_report_every_kernel_path(monkeypatch, env):
    """"auto" takes the widest path the kernel and the CPU have; LLMFS_FORCE_AVX2 keeps AVX-512
    out of that choice and LLMFS_FORCE_SCALAR makes it scalar ("0" or "" mean unset)."""
    set_environment(monkeypatch, env)
    f = K.cpu_features()
    assert isinstance(f["avx2_fma"], bool) and isinstance(f["avx512f"], bool) and isinstance(f["avx512"], bool)
    assert f["force_avx2"] is ("LLMFS_FORCE_AVX2" in env) and f["force_scalar"] is (env.get("LLMFS_FORCE_SCALAR") == "1")
    assert set(f["paths"]) == set(f["available"]) == KERNELS
    cpu = ["scalar"] + ["avx2"] * f["avx2_fma"] + ["avx512"] * f["avx512"]
    widest = {"matmul": 2, "matvec": 2, "matvec_q4_0": 2, "matvec_q8_0": 1, "quantize_q8_0": 1, "attention_decode": 1}
    for kernel in KERNELS:
        assert f["available"][kernel] == tuple(cpu[: widest.get(kernel, 0) + 1])
        want = f["available"][kernel][-1]
        if f["force_avx2"] and want == "avx512":
            want = "avx2"
        if f["force_scalar"]:
            want = "scalar"
        assert f["paths"][kernel] == want, kernel


def path_calls():
    """kernel -> fn(path) on one input, chosen so that different paths give different bits
    (sums in another order or with FMA, another exp): which path ran shows in the result."""
    rng = np.random.default_rng(11)
    a, b = rand(rng, 37, 300), rand(rng, 300, 45)
    w, x = rand(rng, 13, 1024), rand(rng, 1024)
    q8, q4 = K.quantize_q8_0(w, path="scalar"), K.quantize_q4_0(w, path="scalar")
    cache = K.KVCache(1, 2, 64, 40)
    cache.append(0, rand(rng, 64, 2, 40), rand(rng, 64, 2, 40))
    q = rand(rng, 6, 40)
    return {
        "matmul": lambda p: K.matmul(a, b, path=p),
        "matvec": lambda p: K.matvec(w, x, path=p),
        "quantize_q8_0": lambda p: K.quantize_q8_0(w, path=p),
        "quantize_q4_0": lambda p: K.quantize_q4_0(w, path=p),
        "dequantize_q8_0": lambda p: K.dequantize_q8_0(q8, 1024, path=p),
        "dequantize_q4_0": lambda p: K.dequantize_q4_0(q4, 1024, path=p),
        "matvec_q8_0": lambda p: K.matvec_q8_0(q8, x, 1024, path=p),
        "matvec_q4_0": lambda p: K.matvec_q4_0(q4, x, 1024, path=p),
        "attention_decode": lambda p: K.attention_decode(q, cache, 0, path=p),
    }


SAME_BYTES_ON_EVERY_PATH = {"quantize_q8_0"}  # by design (see the quantizer tests below)


@pytest.mark.parametrize("env", [{}, {"LLMFS_FORCE_AVX2": "1"}, {"LLMFS_FORCE_SCALAR": "1"}])
def test_cpu_features_report_the_path_that_runs(monkeypatch, env):
    """For every kernel, path="auto" gives bit for bit the result of the path cpu_features()
    reports, and (where paths differ in their rounding) a different result from every other path:
    a kernel that ran another path than reported, e.g. AVX2 code behind an "avx512" label, fails."""
    set_environment(monkeypatch, env)
    f = K.cpu_features()
    calls = path_calls()
    assert set(calls) == KERNELS
    for kernel, call in calls.items():
        chosen = f["paths"][kernel]
        results = {p: call(p) for p in f["available"][kernel]}
        auto = call("auto")
        assert np.array_equal(auto, results[chosen]), f"{kernel}: 'auto' did not run the reported {chosen} path"
        for other, result in results.items():
            if other != chosen and kernel not in SAME_BYTES_ON_EVERY_PATH:
                assert not np.array_equal(result, auto), f"{kernel}: {other} and {chosen} give the same bits"


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_path_argument_is_checked(kernel):
    """Unknown names, non-strings and paths the kernel or this CPU lacks: a clear error, no crash."""
    call = path_calls()[kernel]
    with pytest.raises(ValueError, match=rf"{kernel}: unknown path 'fast'; path must be one of 'auto', 'scalar'"):
        call("fast")
    for bad in (None, 2, b"avx2", K.PATHS):
        with pytest.raises(TypeError, match=rf"{kernel}: path must be a str"):
            call(bad)
    for missing in set(K.PATHS) - {"auto", *AVAILABLE[kernel]}:
        with pytest.raises(ValueError, match=rf"{kernel}: .*{missing}"):
            call(missing)


# ---------------------------------------------------------------- matmul / matvec

MATMUL_SHAPES = [
    (1, 1, 1), (1, 31, 33), (31, 33, 257), (33, 1, 31), (257, 31, 1), (6, 16, 256), (7, 17, 257),
    (12, 32, 512), (100, 200, 300), (145, 33, 260), (5, 4081, 3),
]


@on_paths("matmul")
@pytest.mark.parametrize("m,n,k", MATMUL_SHAPES)
def test_matmul_matches_numpy(path, m, n, k):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a, b = rand(rng, m, k), rand(rng, k, n)
    assert_close_products(K.matmul(a, b, path=path), a, b, k)


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
@given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 300), st.sampled_from(AVAILABLE["matmul"]))
def test_matmul_random_shapes(m, n, k, path):
    """Every edge tile and every depth, odd or even (the AVX-512 kernel takes k two at a time)."""
    rng = np.random.default_rng(m + 100 * n + 10000 * k)
    a, b = rand(rng, m, k), rand(rng, k, n)
    assert_close_products(K.matmul(a, b, path=path), a, b, k)


MATVEC_SHAPES = [(1, 1), (1, 31), (31, 1), (33, 257), (257, 33), (5, 4096), (4, 16), (9, 17)]


@on_paths("matvec")
@pytest.mark.parametrize("rows,cols", MATVEC_SHAPES)
def test_matvec_matches_numpy(path, rows, cols):
    rng = np.random.default_rng(rows * 1000 + cols)
    w, x = rand(rng, rows, cols), rand(rng, cols)
    assert_close_products(K.matvec(w, x, path=path), w, x, cols)
    assert np.array_equal(K.matvec(w, x, threads=3, path=path), K.matvec(w, x, path=path))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 13), st.integers(1, 300), st.integers(0, 20), st.sampled_from(AVAILABLE["matvec"]))
def test_matvec_at_any_alignment(rows, cols, skip, path):
    """W starting anywhere in a cache line (a row slice of a bigger array, still C-contiguous):
    the AVX-512 kernel aligns its loads to the first row, so every lead and tail length occurs."""
    rng = np.random.default_rng(rows * 1000 + cols + 7 * skip)
    w = rand(rng, rows * cols + skip)[skip:].reshape(rows, cols)
    x = rand(rng, cols)
    assert_close_products(K.matvec(w, x, path=path), w, x, cols)


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


@pytest.mark.parametrize("fmt,path", kernel_paths("quantize_"))
@pytest.mark.parametrize("rows,cols", QUANT_SHAPES)
def test_quantize_is_byte_identical_to_ggml(fmt, path, rows, cols):
    quantize, dequantize, _, qtype, nbytes = FORMATS[fmt]
    rng = np.random.default_rng(rows * 7 + cols)
    w = rand(rng, rows, cols, scale=rng.uniform(0.01, 100))
    q = quantize(w, path=path)
    assert q.dtype == np.uint8 and q.shape == (rows, cols // 32 * nbytes)
    assert np.array_equal(q, gguf_quants.quantize(w, qtype))
    assert np.array_equal(dequantize(q, cols), gguf_quants.dequantize(q, qtype))


@pytest.mark.parametrize("fmt,path", kernel_paths("quantize_"))
def test_quantize_rounding_rules_on_special_blocks(fmt, path):
    quantize, dequantize, _, qtype, _ = FORMATS[fmt]
    w = special_rows()
    assert np.array_equal(quantize(w, path=path), gguf_quants.quantize(w, qtype))
    w2 = w.reshape(1, -1)  # the same blocks as one long row
    assert np.array_equal(quantize(w2, path=path), gguf_quants.quantize(w2, qtype))
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
    reference = K.quantize_q8_0(w, path="scalar")
    for path in AVAILABLE["quantize_q8_0"]:
        assert np.array_equal(K.quantize_q8_0(w, path=path), reference), path


def test_quantize_error_is_within_half_a_step():
    """Rounding to the nearest level: |error| <= step / 2, plus what rounding the stored scale d
    to fp16 adds (|q| * |d| * 2^-11). Q8_0's step is max|x| / 127; Q4_0's is max|x| / 8, and the
    one exception is Q4_0's top level: x / d is in [-8, 8] but q - 8 stops at 7, so values with
    x / d > 7.5 (opposite in sign to the largest one) are up to one step off."""
    rng = np.random.default_rng(1)
    w = rand(rng, 64, 256)
    blocks = w.reshape(-1, 32).astype(np.float64)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    fp16 = 2.0**-11  # relative rounding of the stored scale
    err8 = np.abs(K.dequantize_q8_0(K.quantize_q8_0(w), 256).reshape(-1, 32) - blocks)
    assert np.all(err8 <= amax / 127 * (0.5 + 127 * fp16) * 1.001)
    err4 = np.abs(K.dequantize_q4_0(K.quantize_q4_0(w), 256).reshape(-1, 32) - blocks)
    signed_max = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=1)[:, None], axis=1)
    clamped = blocks / (signed_max / -8) > 7.5
    assert 0 < clamped.sum() < clamped.size / 50  # both cases occur, the clamped one rarely
    step4 = amax / 8 * np.ones_like(blocks)
    assert np.all(err4[~clamped] <= (step4 * (0.5 + 8 * fp16) * 1.001)[~clamped])  # half a step
    assert np.all(err4[clamped] <= (step4 * (1 + 8 * fp16) * 1.001)[clamped])  # one step at the top


def quantized_reference(fmt, q, x, cols):
    """dequantize(q) @ dequantize(quantize_q8_0(x)): what ggml computes, in float64."""
    _, dequantize, *_ = FORMATS[fmt]
    wd = dequantize(q, cols).astype(np.float64)
    xd = gguf_quants.dequantize(gguf_quants.quantize(x[None], GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0)[0]
    return wd @ xd, np.abs(wd) @ np.abs(xd)


@pytest.mark.parametrize("fmt,path", kernel_paths("matvec_"))
@pytest.mark.parametrize("rows,cols", [(1, 32), (3, 64), (7, 288), (33, 800), (9, 2048), (64, 4096), (5, 256)])
def test_quantized_matvec_matches_dequantized_product(fmt, path, rows, cols):
    quantize, _, matvec_q, *_ = FORMATS[fmt]
    rng = np.random.default_rng(rows + cols)
    w, x = rand(rng, rows, cols), rand(rng, cols)
    q = quantize(w)
    ref, mag = quantized_reference(fmt, q, x, cols)
    y = matvec_q(q, x, cols, path=path)
    assert y.dtype == np.float32 and y.shape == (rows,)
    assert np.all(np.abs(y - ref) <= 4 * (cols // 32 + 2) * EPS32 * mag + 1e-30)
    assert np.array_equal(matvec_q(q, x, cols, threads=3, path=path), y)
    # and it is close to the float product (quantization error only)
    assert np.allclose(y, w.astype(np.float64) @ x, rtol=0.2 if fmt == "q4_0" else 0.05, atol=0.2 * np.sqrt(cols))


@pytest.mark.parametrize("fmt,path", [(fmt, path) for fmt, path in kernel_paths("matvec_") if path != "scalar"])
def test_quantized_matvec_handles_any_byte_pattern(fmt, path):
    """Weights not made by the quantizer (e.g. int8 -128, fp16 scales of every kind) still give
    the scalar result on the SIMD paths: the integer part is exact, only float rounding differs."""
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
    y = matvec_q(q, x, cols, path=path)
    ys = matvec_q(q, x, cols, path="scalar")
    ref, mag = quantized_reference(fmt, q, x, cols)
    assert np.all(np.isfinite(y))
    assert np.all(np.abs(y - ys) <= 8 * (cols // 32 + 2) * EPS32 * mag + 1e-30)
    assert np.all(np.abs(y - ref) <= 8 * (cols // 32 + 2) * EPS32 * mag + 1e-30)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 60), st.integers(0, 2**32 - 1), st.sampled_from([1e-3, 1.0, 300.0]))
def test_quantized_matvec_paths_agree(rows, blocks, seed, scale):
    """Random shapes (every tail length: groups of 8 blocks for AVX2, 16 for AVX-512): every path
    gives the scalar path's products up to float rounding, and threads change nothing."""
    rng = np.random.default_rng(seed)
    cols = 32 * blocks
    w, x = rand(rng, rows, cols, scale=scale), rand(rng, cols)
    for fmt in FORMATS:
        quantize, _, matvec_q, *_ = FORMATS[fmt]
        q = quantize(w)
        _, mag = quantized_reference(fmt, q, x, cols)
        ys = matvec_q(q, x, cols, path="scalar")
        tol = 4 * (blocks + 2) * EPS32 * mag + 1e-30
        for path in AVAILABLE["matvec_" + fmt]:
            y = matvec_q(q, x, cols, path=path)
            assert np.all(np.abs(y - ys) <= tol), path
            assert np.array_equal(matvec_q(q, x, cols, threads=2, path=path), y), path


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
    """O(1) append: each append writes only the new position, in place. Two ways an O(n) append
    would show: the data moving to a new buffer (the address of every layer's keys and values
    must stay the one it had before the first append), or the filled part being rewritten from
    some other copy (a marker written into position 0 behind the cache's back must survive)."""
    c = K.KVCache(2, 8, 4096, 64)
    address = lambda view: view.__array_interface__["data"][0]  # noqa: E731
    before = [address(view(layer)) for layer in range(2) for view in (c.keys, c.values)]
    first = np.frombuffer((ctypes.c_float * (8 * 64)).from_address(before[0]), np.float32)  # layer 0, keys, position 0
    row = np.ones((8, 64), np.float32)
    for t in range(4096):
        c.append(0, row, row)
        c.append(1, row * 2, row * 2)
        if t == 0:
            first[:] = -1.0  # the marker
        if t % 512 == 0:
            assert [address(view(layer)) for layer in range(2) for view in (c.keys, c.values)] == before
    keys = c.keys(0)
    assert len(c) == 4096 and address(keys) == before[0]
    assert np.all(keys[0] == -1.0), "position 0 was rewritten by a later append"
    assert keys[1:].sum() == 4095 * 8 * 64 and c.values(1).sum() == 2 * 4096 * 8 * 64


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


@on_paths("attention_decode")
@pytest.mark.parametrize("n_heads,n_kv", [(1, 1), (4, 4), (8, 2), (6, 3), (32, 8)])
@pytest.mark.parametrize("head_dim,T", [(64, 257), (7, 33), (1, 5), (65, 1), (16, 31)])
def test_attention_decode_matches_numpy(path, n_heads, n_kv, head_dim, T):
    rng = np.random.default_rng(n_heads * 100 + head_dim * 10 + T)
    c = K.KVCache(2, n_kv, T + 3, head_dim)
    k, v = rand(rng, T, n_kv, head_dim), rand(rng, T, n_kv, head_dim)
    c.append(1, k, v)
    q = rand(rng, n_heads, head_dim, scale=2.0)
    out = K.attention_decode(q, c, 1, path=path)
    assert out.shape == (n_heads, head_dim) and out.dtype == np.float32
    assert np.allclose(out, reference_attention(q, k, v), rtol=1e-4, atol=1e-5)


@on_paths("attention_decode")
def test_attention_is_stable_for_large_scores(path):
    c = K.KVCache(1, 1, 3, 4)
    c.append(0, np.array([[[100, 0, 0, 0]], [[-100, 0, 0, 0]], [[0, 0, 0, 0]]], np.float32),
             np.array([[[1, 0, 0, 0]], [[0, 1, 0, 0]], [[0, 0, 1, 0]]], np.float32))
    out = K.attention_decode(np.array([[100, 0, 0, 0]], np.float32), c, 0, path=path)
    assert np.allclose(out, [[1, 0, 0, 0]], atol=1e-6)


def test_attention_paths_agree():
    rng = np.random.default_rng(5)
    c = K.KVCache(1, 4, 300, 64)
    c.append(0, rand(rng, 300, 4, 64), rand(rng, 300, 4, 64))
    q = rand(rng, 16, 64)
    slow = K.attention_decode(q, c, 0, path="scalar")
    for path in AVAILABLE["attention_decode"]:
        assert np.allclose(K.attention_decode(q, c, 0, path=path), slow, rtol=1e-5, atol=1e-6), path
