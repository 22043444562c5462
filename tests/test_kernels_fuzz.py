"""Bad input must raise TypeError / ValueError from every kernel entry point, never crash.

Hypothesis draws a valid call, breaks exactly one thing about it (dtype, rank, shape, strides,
alignment, Python type, cols % 32, NaN, thread count, layer / head index, cache overflow, path...)
and checks that the call raises cleanly. A crash (segfault) would take the test run down with it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmfs import kernels as K

# ---------------------------------------------------------------- ways to break an array

NOT_ARRAYS = [None, 3, 2.5, "abc", [[1.0, 2.0]], (1.0,), {"a": 1}, object(), b"\x00" * 8]
WRONG_DTYPES = [np.float64, np.float16, np.int32, np.int8, np.bool_, np.complex64, ">f4", object]


def break_array(draw, good: np.ndarray) -> object:
    """Something that is not a valid stand-in for `good` (a C-contiguous array, float32 or uint8)."""
    how = draw(st.sampled_from(["type", "dtype", "rank", "strides", "align"]))
    if how == "align" and good.dtype.itemsize == 1:
        how = "dtype"  # a uint8 array cannot be misaligned
    if how == "type":
        return draw(st.sampled_from(NOT_ARRAYS + [good.tolist()]))
    if how == "dtype":
        wrong = [d for d in WRONG_DTYPES if np.dtype(d) != good.dtype] + [np.uint8 if good.dtype != np.uint8 else np.float32]
        dtype = np.dtype(draw(st.sampled_from(wrong)))
        return np.full(good.shape, None, dtype=object) if dtype == np.dtype(object) else np.zeros(good.shape, dtype=dtype)
    if how == "rank":
        r = draw(st.sampled_from([r for r in range(5) if r != good.ndim]))
        return np.zeros((2,) * r, dtype=good.dtype)
    if how == "strides":  # every other element of a wider array: never C-contiguous
        shape = [max(n, 2) for n in good.shape]
        shape[-1] *= 2
        return np.zeros(shape, dtype=good.dtype)[..., ::2]
    # "align": the right dtype and shape, one byte off a float boundary
    raw = np.zeros(max(good.nbytes, good.itemsize) + 8, dtype=np.uint8)
    return np.frombuffer(raw.data, dtype=good.dtype, count=max(good.size, 1), offset=1).reshape(good.shape or ())


BAD_THREADS = [0, -1, 257, 10**6, 2**40, 1.5, "2", None, [1]]
BAD_COLS = [-32, -1, 1, 31, 33, 48, 100, 2**40, 2**62, 2**63 - 32, 2**64, 1.0, "32", None]

f32 = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731


# ---------------------------------------------------------------- one bad call per entry point


def bad_matmul(draw):
    m, k, n = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    args = {"a": f32(m, k), "b": f32(k, n)}
    what = draw(st.sampled_from(["a", "b", "mismatch", "threads"]))
    if what == "mismatch":
        args["b"] = f32(k + draw(st.integers(1, 5)), n)
        return K.matmul, (args["a"], args["b"]), {}
    if what == "threads":
        return K.matmul, (args["a"], args["b"]), {"threads": draw(st.sampled_from(BAD_THREADS))}
    args[what] = break_array(draw, args[what])
    return K.matmul, (args["a"], args["b"]), {}


def bad_matvec(draw):
    r, c = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    args = {"w": f32(r, c), "x": f32(c)}
    what = draw(st.sampled_from(["w", "x", "mismatch", "threads"]))
    if what == "mismatch":
        return K.matvec, (args["w"], f32(c + draw(st.integers(1, 5)))), {}
    if what == "threads":
        return K.matvec, (args["w"], args["x"]), {"threads": draw(st.sampled_from(BAD_THREADS))}
    args[what] = break_array(draw, args[what])
    return K.matvec, (args["w"], args["x"]), {}


QUANT = {"q8_0": (K.quantize_q8_0, K.dequantize_q8_0, K.matvec_q8_0, 34),
         "q4_0": (K.quantize_q4_0, K.dequantize_q4_0, K.matvec_q4_0, 18)}


def bad_quantize(draw):
    quantize = QUANT[draw(st.sampled_from(list(QUANT)))][0]
    r, nb = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    what = draw(st.sampled_from(["w", "cols", "nan"]))
    if what == "cols":
        return quantize, (f32(r, 32 * nb + draw(st.integers(1, 31))),), {}
    if what == "nan":
        w = f32(r, 32 * nb)
        w.flat[draw(st.integers(0, w.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return quantize, (w,), {}
    return quantize, (break_array(draw, f32(r, 32 * nb)),), {}


def bad_dequantize(draw):
    _, dequantize, _, nbytes = QUANT[draw(st.sampled_from(list(QUANT)))]
    r, nb = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    q = np.zeros((r, nb * nbytes), dtype=np.uint8)
    what = draw(st.sampled_from(["q", "cols", "width"]))
    if what == "q":
        return dequantize, (break_array(draw, q), 32 * nb), {}
    if what == "cols":
        return dequantize, (q, draw(st.sampled_from(BAD_COLS))), {}
    return dequantize, (q, 32 * (nb + draw(st.integers(1, 3)))), {}  # q too narrow for cols


def bad_matvec_quantized(draw):
    _, _, matvec_q, nbytes = QUANT[draw(st.sampled_from(list(QUANT)))]
    r, nb = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    q, x, cols = np.zeros((r, nb * nbytes), dtype=np.uint8), f32(32 * nb), 32 * nb
    what = draw(st.sampled_from(["q", "x", "cols", "xlen", "nan", "threads"]))
    if what == "q":
        return matvec_q, (break_array(draw, q), x, cols), {}
    if what == "x":
        return matvec_q, (q, break_array(draw, x), cols), {}
    if what == "cols":
        return matvec_q, (q, x, draw(st.sampled_from(BAD_COLS + [cols + 32, cols - 32]))), {}
    if what == "xlen":
        return matvec_q, (q, f32(cols + draw(st.sampled_from([-1, 1, 32]))), cols), {}
    if what == "nan":
        x = x.copy()
        x[draw(st.integers(0, cols - 1))] = draw(st.sampled_from([np.nan, np.inf]))
        return matvec_q, (q, x, cols), {}
    return matvec_q, (q, x, cols), {"threads": draw(st.sampled_from(BAD_THREADS))}


def bad_kvcache_new(draw):
    dims = [draw(st.integers(1, 4)) for _ in range(4)]
    i = draw(st.integers(0, 3))
    dims[i] = draw(st.sampled_from([0, -1, -(2**40), 2**40, 1.5, "4", None]))
    return K.KVCache, tuple(dims), {}


def small_cache(draw, filled: bool = True):
    L, H, T, D = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(1, 8))
    c = K.KVCache(L, H, T, D)
    if filled:
        for layer in range(L):
            c.append(layer, f32(1, H, D), f32(1, H, D))
    return c


def bad_kvcache_use(draw):
    c = small_cache(draw)
    L, H, T, D = c.n_layers, c.n_kv_heads, c.max_seq_len, c.head_dim
    bad_layer = draw(st.sampled_from([-1, L, L + 5, -(2**40), 2**40]))
    what = draw(st.sampled_from(["layer", "k", "v", "vshape", "kshape", "overflow", "view", "length"]))
    if what == "layer":
        return c.append, (bad_layer, f32(H, D), f32(H, D)), {}
    if what in ("k", "v"):
        k, v = f32(H, D), f32(H, D)
        return c.append, ((0, break_array(draw, k), v) if what == "k" else (0, k, break_array(draw, v))), {}
    if what == "kshape":
        shape = draw(st.sampled_from([(H + 1, D), (H, D + 1), (1, H + 1, D), (2, H, D + 2)]))
        return c.append, (0, f32(*shape), f32(*shape)), {}
    if what == "vshape":
        return c.append, (0, f32(1, H, D), f32(2, H, D)), {}
    if what == "overflow":
        return c.append, (0, f32(T, H, D), f32(T, H, D)), {}  # one position is already there
    if what == "view":
        return draw(st.sampled_from([c.keys, c.values])), (bad_layer,), {}
    return c.length, (bad_layer,), {}


def bad_attention(draw):
    c = small_cache(draw)
    L, H, D = c.n_layers, c.n_kv_heads, c.head_dim
    q = f32(H * draw(st.integers(1, 3)), D)
    what = draw(st.sampled_from(["q", "cache", "layer", "head_dim", "heads", "empty"]))
    if what == "q":
        return K.attention_decode, (break_array(draw, q), c, 0), {}
    if what == "cache":
        return K.attention_decode, (q, draw(st.sampled_from(NOT_ARRAYS + [np.zeros((2, 2), np.float32)])), 0), {}
    if what == "layer":
        return K.attention_decode, (q, c, draw(st.sampled_from([-1, L, 2**40, 1.5, None]))), {}
    if what == "head_dim":
        return K.attention_decode, (f32(H, D + draw(st.integers(1, 3))), c, 0), {}
    if what == "heads":  # not a positive multiple of n_kv_heads
        n = draw(st.sampled_from([0] + ([H - 1, H + 1, 2 * H + 1] if H > 1 else [])))
        return K.attention_decode, (f32(n, D), c, 0), {}
    c.reset()
    return K.attention_decode, (q, c, 0), {}


def bad_path(draw):
    """A valid call with a path that is no path, or one this kernel or this CPU does not have."""
    available = K.cpu_features()["available"]
    c = K.KVCache(1, 2, 4, 8)
    c.append(0, f32(2, 8), f32(2, 8))
    q8, q4 = np.zeros((3, 34), np.uint8), np.zeros((3, 18), np.uint8)
    calls = {
        "matmul": (K.matmul, (f32(3, 4), f32(4, 5))),
        "matvec": (K.matvec, (f32(3, 4), f32(4))),
        "quantize_q8_0": (K.quantize_q8_0, (f32(2, 32),)),
        "quantize_q4_0": (K.quantize_q4_0, (f32(2, 32),)),
        "dequantize_q8_0": (K.dequantize_q8_0, (q8, 32)),
        "dequantize_q4_0": (K.dequantize_q4_0, (q4, 32)),
        "matvec_q8_0": (K.matvec_q8_0, (q8, f32(32), 32)),
        "matvec_q4_0": (K.matvec_q4_0, (q4, f32(32), 32)),
        "attention_decode": (K.attention_decode, (f32(4, 8), c, 0)),
    }
    kernel = draw(st.sampled_from(sorted(calls)))
    missing = [p for p in K.PATHS if p != "auto" and p not in available[kernel]]
    bad = draw(st.sampled_from(missing + ["", "AVX2", "fast", "neon", "auto ", None, 1, 2.0, b"scalar", ["avx2"]]))
    fn, args = calls[kernel]
    return fn, args, {"path": bad}


BUILDERS = [bad_matmul, bad_matvec, bad_quantize, bad_dequantize, bad_matvec_quantized, bad_kvcache_new,
            bad_kvcache_use, bad_attention, bad_path]


@st.composite
def bad_calls(draw):
    return draw(st.sampled_from(BUILDERS))(draw)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bad_calls())
def test_bad_input_raises_cleanly(call):
    fn, args, kwargs = call
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args, **kwargs)
    assert str(info.value), "the error must say what was expected"


def test_error_messages_say_what_was_expected():
    with pytest.raises(TypeError, match="float32.*float64"):
        K.matmul(np.zeros((2, 2)), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"b must be \(3, N\)"):
        K.matmul(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        K.matvec(np.zeros((4, 4), np.float32).T, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="multiple of 32"):
        K.quantize_q8_0(np.zeros((1, 40), np.float32))
    with pytest.raises(ValueError, match="threads"):
        K.matvec(np.zeros((4, 4), np.float32), np.zeros(4, np.float32), threads=0)
    with pytest.raises(TypeError, match="KVCache"):
        K.attention_decode(np.zeros((1, 4), np.float32), "cache", 0)
    c = K.KVCache(2, 2, 4, 8)
    with pytest.raises(ValueError, match="layer must be in"):
        c.keys(2)
    with pytest.raises(ValueError, match="empty"):
        K.attention_decode(np.zeros((2, 8), np.float32), c, 0)
    with pytest.raises(ValueError, match="matvec: unknown path 'fast'; path must be one of 'auto', 'scalar', 'avx2', 'avx512'"):
        K.matvec(np.zeros((4, 4), np.float32), np.zeros(4, np.float32), path="fast")
    c.append(0, np.zeros((2, 8), np.float32), np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match="attention_decode: there is no avx512 version"):
        K.attention_decode(np.zeros((2, 8), np.float32), c, 0, path="avx512")
