// bindings.cpp: the only file that knows about Python. Every kernel lives in its own header.
//
// Each entry point checks everything it is given (Python type, dtype, rank, shape agreement,
// C-contiguity, alignment, cols % 32, finiteness where a float becomes an integer, layer and
// head indices, thread counts, the path) and raises TypeError / ValueError saying what it
// expected, before any pointer is touched: bad input must never crash the process. Then it
// releases the GIL, so other Python threads run while the kernel does.
//
// Every kernel takes path="auto" | "scalar" | "avx2" | "avx512" (path_arg below): "auto" is
// decided by auto_path() in cpu.h, the same function cpu_features() reports with.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention.h"
#include "cpu.h"
#include "gemm.h"
#include "gemv.h"
#include "kvcache.h"
#include "quant.h"
#include "roofline.h"

namespace py = pybind11;
using namespace llmfs;

namespace {

constexpr int MAX_THREADS = 256;

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// The argument `where` (e.g. "matmul: a") as a numpy array of `dtype` with ndim in [lo, hi],
// C-contiguous and aligned; `expected` describes the shape for the message, e.g. "2-D (M, K)".
py::array array_arg(const py::handle& obj, const std::string& where, const py::dtype& dtype,
                    const std::string& dtype_name, py::ssize_t lo, py::ssize_t hi, const std::string& expected) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(where + " must be a numpy array, " + expected + " " + dtype_name + ", got " +
                             Py_TYPE(obj.ptr())->tp_name);
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().equal(dtype))
        throw py::type_error(where + " must have dtype " + dtype_name + ", got " + std::string(py::str(a.dtype())) +
                             " (convert with .astype(np." + dtype_name + "))");
    if (a.ndim() < lo || a.ndim() > hi)
        throw py::value_error(where + " must be " + expected + ", got shape " + shape_of(a));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(where + " must be C-contiguous (pass np.ascontiguousarray(...)), got a strided view");
    if (a.size() > 0 && reinterpret_cast<uintptr_t>(a.data()) % size_t(a.itemsize()) != 0)
        throw py::value_error(where + " is not aligned in memory (pass a copy, np.array(...))");
    return a;
}

py::array f32_arg(const py::handle& obj, const std::string& where, py::ssize_t ndim, const std::string& expected) {
    return array_arg(obj, where, py::dtype::of<float>(), "float32", ndim, ndim, expected);
}
py::array u8_arg(const py::handle& obj, const std::string& where, const std::string& expected) {
    return array_arg(obj, where, py::dtype::of<uint8_t>(), "uint8", 2, 2, expected);
}

int threads_arg(int threads, const std::string& fn) {
    if (threads < 1 || threads > MAX_THREADS)
        throw py::value_error(fn + ": threads must be between 1 and " + std::to_string(MAX_THREADS) + ", got " +
                              std::to_string(threads));
    return threads;
}

int64_t index_arg(int64_t i, int64_t n, const std::string& where) {
    if (i < 0 || i >= n)
        throw py::value_error(where + " must be in [0, " + std::to_string(n) + "), got " + std::to_string(i));
    return i;
}

void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error(message);
}

const float* fptr(const py::array& a) { return static_cast<const float*>(a.data()); }

// ---- the path of each call ----

// Every kernel and the widest path it has, as its header declares it. path_arg() dispatches
// from this table and cpu_features() reports from it.
struct Kernel {
    const char* name;
    Path widest;
};
const Kernel KERNELS[] = {
    {"matmul", gemm::WIDEST},
    {"matvec", gemv::WIDEST},
    {"quantize_q8_0", quant::quantize_widest(quant::Format::Q8_0)},
    {"quantize_q4_0", quant::quantize_widest(quant::Format::Q4_0)},
    {"dequantize_q8_0", Path::scalar},
    {"dequantize_q4_0", Path::scalar},
    {"matvec_q8_0", quant::matvec_widest(quant::Format::Q8_0)},
    {"matvec_q4_0", quant::matvec_widest(quant::Format::Q4_0)},
    {"attention_decode", attention::WIDEST},
};

Path widest_path(const std::string& fn) {
    for (const Kernel& k : KERNELS)
        if (fn == k.name) return k.widest;
    throw std::logic_error("no kernel named " + fn);  // a bug here, not a user error
}

// The paths from scalar up to `last`, for messages: "'scalar', 'avx2'".
std::string path_names(Path last) {
    std::string s;
    for (Path p : {Path::scalar, Path::avx2, Path::avx512})
        if (p <= last) s += std::string(s.empty() ? "'" : ", '") + path_name(p) + "'";
    return s;
}

// The path kernel `fn` runs for the argument `path`: "auto" -> auto_path() (cpu.h); "scalar",
// "avx2" or "avx512" -> that version, which the kernel and this CPU must both have.
Path path_arg(const py::handle& path, const std::string& fn) {
    const Path widest = widest_path(fn);
    const std::string choices = "'auto', " + path_names(widest);
    if (!py::isinstance<py::str>(path))
        throw py::type_error(fn + ": path must be a str, one of " + choices + ", got " + Py_TYPE(path.ptr())->tp_name);
    const std::string name = path.cast<std::string>();
    if (name == "auto") return auto_path(widest);
    for (Path p : {Path::scalar, Path::avx2, Path::avx512}) {
        if (name != path_name(p)) continue;
        require(p <= widest, fn + ": there is no " + name + " version of this kernel; path must be one of " + choices);
        require(p <= cpu_path(), fn + ": path '" + name + "' needs " +
                                     (p == Path::avx2 ? "AVX2, FMA and F16C" : "AVX-512 F, BW, VL and VNNI") +
                                     ", which this CPU does not have (cpu_features() lists what it has)");
        return p;
    }
    throw py::value_error(fn + ": unknown path '" + name + "'; path must be one of " + choices);
}

// ---- float32 GEMM / GEMV ----

// A new (rows, cols) float32 array whose data starts on a 64-byte cache line. NumPy's own
// allocator only promises 16 bytes; GEMM writes C in 16-float (64-byte) tile rows, and with C
// aligned each of them is one whole cache line instead of two halves (README, "Tuning history").
py::array_t<float> aligned_f32(int64_t rows, int64_t cols) {
    auto* buf = new Aligned<float>(size_t(rows * cols));  // throws std::bad_alloc -> MemoryError
    py::capsule owner(buf, [](void* p) { delete static_cast<Aligned<float>*>(p); });
    return py::array_t<float>({rows, cols}, buf->data, owner);
}

py::array matmul(const py::handle& a_, const py::handle& b_, int threads, const py::handle& path_) {
    threads = threads_arg(threads, "matmul");
    const Path path = path_arg(path_, "matmul");
    const py::array a = f32_arg(a_, "matmul: a", 2, "2-D (M, K)");
    const py::array b = f32_arg(b_, "matmul: b", 2, "2-D (K, N)");
    const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
    require(b.shape(0) == K, "matmul: a is (M, K) = " + shape_of(a) + ", so b must be (" + std::to_string(K) +
                                 ", N), got " + shape_of(b));
    py::array_t<float> c = aligned_f32(M, N);
    float* out = c.mutable_data();
    py::gil_scoped_release nogil;
    gemm::matmul(M, N, K, fptr(a), fptr(b), out, threads, path);
    return std::move(c);
}

py::array matvec(const py::handle& w_, const py::handle& x_, int threads, const py::handle& path_) {
    threads = threads_arg(threads, "matvec");
    const Path path = path_arg(path_, "matvec");
    const py::array w = f32_arg(w_, "matvec: w", 2, "2-D (rows, cols)");
    const py::array x = f32_arg(x_, "matvec: x", 1, "1-D (cols,)");
    const int64_t rows = w.shape(0), cols = w.shape(1);
    require(x.shape(0) == cols, "matvec: w is (rows, cols) = " + shape_of(w) + ", so x must be (" +
                                    std::to_string(cols) + ",), got " + shape_of(x));
    py::array_t<float> y(rows);
    float* out = y.mutable_data();
    py::gil_scoped_release nogil;
    gemv::matvec(rows, cols, fptr(w), fptr(x), out, threads, path);
    return std::move(y);
}

// ---- Q8_0 / Q4_0 ----

struct Format {
    const char* name;  // "q8_0"
    int64_t bytes;     // per block of 32
    quant::Format id;
};
constexpr Format Q8_0{"q8_0", quant::Q8_0_BYTES, quant::Format::Q8_0};
constexpr Format Q4_0{"q4_0", quant::Q4_0_BYTES, quant::Format::Q4_0};

void cols_arg(int64_t cols, const std::string& fn) {
    require(cols >= 0 && cols % quant::QK == 0 && cols <= (int64_t(1) << 40),
            fn + ": cols must be a multiple of 32 (one block), at most 2^40, got " + std::to_string(cols));
}

void finite_arg(const py::array& a, const std::string& where) {
    require(quant::all_finite(fptr(a), a.size()), where + " contains NaN or infinity, which cannot be quantized");
}

// q (rows, cols/32 * bytes) for `cols` columns.
py::array quantized_arg(const Format& f, const py::handle& q_, int64_t cols, const std::string& fn) {
    cols_arg(cols, fn);
    const int64_t width = cols / quant::QK * f.bytes;
    const py::array q = u8_arg(q_, fn + ": q", "2-D (rows, cols/32 * " + std::to_string(f.bytes) + ")");
    require(q.shape(1) == width, fn + ": for cols=" + std::to_string(cols) + ", q must be (rows, " +
                                     std::to_string(width) + ") (" + std::to_string(f.bytes) +
                                     " bytes per block of 32), got " + shape_of(q));
    return q;
}

py::array quantize(const Format& f, const py::handle& w_, const py::handle& path_) {
    const std::string fn = std::string("quantize_") + f.name;
    const Path path = path_arg(path_, fn);
    const py::array w = f32_arg(w_, fn + ": w", 2, "2-D (rows, cols)");
    const int64_t rows = w.shape(0), cols = w.shape(1);
    cols_arg(cols, fn);
    finite_arg(w, fn + ": w");
    py::array_t<uint8_t> q({rows, cols / quant::QK * f.bytes});
    uint8_t* out = q.mutable_data();
    py::gil_scoped_release nogil;
    if (f.id == quant::Format::Q8_0) quant::quantize_q8_0(rows, cols, fptr(w), out, path);
    else quant::quantize_q4_0(rows, cols, fptr(w), out);  // scalar only
    return std::move(q);
}

py::array dequantize(const Format& f, const py::handle& q_, int64_t cols, const py::handle& path_) {
    const std::string fn = std::string("dequantize_") + f.name;
    path_arg(path_, fn);  // checked only: scalar is the one path
    const py::array q = quantized_arg(f, q_, cols, fn);
    const int64_t rows = q.shape(0);
    py::array_t<float> w({rows, cols});
    float* out = w.mutable_data();
    const auto* in = static_cast<const uint8_t*>(q.data());
    py::gil_scoped_release nogil;
    if (f.id == quant::Format::Q8_0) quant::dequantize_q8_0(rows, cols, in, out);
    else quant::dequantize_q4_0(rows, cols, in, out);
    return std::move(w);
}

py::array matvec_quantized(const Format& f, const py::handle& q_, const py::handle& x_, int64_t cols, int threads,
                           const py::handle& path_) {
    const std::string fn = std::string("matvec_") + f.name;
    threads = threads_arg(threads, fn);
    const Path path = path_arg(path_, fn);
    const py::array q = quantized_arg(f, q_, cols, fn);
    const py::array x = f32_arg(x_, fn + ": x", 1, "1-D (cols,)");
    require(x.shape(0) == cols, fn + ": x must be (" + std::to_string(cols) + ",) for cols=" + std::to_string(cols) +
                                    ", got " + shape_of(x));
    finite_arg(x, fn + ": x");
    const int64_t rows = q.shape(0);
    py::array_t<float> y(rows);
    float* out = y.mutable_data();
    const auto* in = static_cast<const uint8_t*>(q.data());
    py::gil_scoped_release nogil;
    if (f.id == quant::Format::Q8_0) quant::matvec<quant::Format::Q8_0>(rows, cols, in, fptr(x), out, threads, path);
    else quant::matvec<quant::Format::Q4_0>(rows, cols, in, fptr(x), out, threads, path);
    return std::move(y);
}

// ---- KV cache and attention ----

KVCache& cache_arg(const py::handle& obj, const std::string& fn) {
    if (!py::isinstance<KVCache>(obj))
        throw py::type_error(fn + ": cache must be a KVCache, got " + Py_TYPE(obj.ptr())->tp_name);
    return obj.cast<KVCache&>();
}

void append(KVCache& c, int64_t layer, const py::handle& k_, const py::handle& v_) {
    index_arg(layer, c.n_layers, "KVCache.append: layer");
    const std::string expected = "(n_kv_heads, head_dim) = (" + std::to_string(c.n_kv_heads) + ", " +
                                 std::to_string(c.head_dim) + ") or (n_positions, " + std::to_string(c.n_kv_heads) +
                                 ", " + std::to_string(c.head_dim) + ")";
    const py::array k = array_arg(k_, "KVCache.append: k", py::dtype::of<float>(), "float32", 2, 3, expected);
    const py::array v = array_arg(v_, "KVCache.append: v", py::dtype::of<float>(), "float32", 2, 3, expected);
    const py::ssize_t nd = k.ndim();
    require(k.shape(nd - 2) == c.n_kv_heads && k.shape(nd - 1) == c.head_dim,
            "KVCache.append: k must be " + expected + ", got " + shape_of(k));
    require(v.ndim() == nd && shape_of(v) == shape_of(k),
            "KVCache.append: v must have the shape of k " + shape_of(k) + ", got " + shape_of(v));
    c.append(layer, fptr(k), fptr(v), nd == 3 ? k.shape(0) : 1);
}

// A read-only numpy view (length, n_kv_heads, head_dim) of a layer's filled keys or values;
// it keeps the cache alive (base object) so the memory cannot go away under it.
py::array cache_view(KVCache& c, int64_t layer, bool values) {
    index_arg(layer, c.n_layers, values ? "KVCache.values: layer" : "KVCache.keys: layer");
    float* data = values ? c.values(layer) : c.keys(layer);
    py::object owner = py::cast(&c, py::return_value_policy::reference);
    py::array view(py::dtype::of<float>(), std::vector<py::ssize_t>{c.length(layer), c.n_kv_heads, c.head_dim},
                   data, owner);
    view.attr("setflags")(py::arg("write") = false);
    return view;
}

py::array attention_decode(const py::handle& q_, const py::handle& cache_, int64_t layer, const py::handle& path_) {
    KVCache& c = cache_arg(cache_, "attention_decode");
    const Path path = path_arg(path_, "attention_decode");
    index_arg(layer, c.n_layers, "attention_decode: layer");
    const py::array q = f32_arg(q_, "attention_decode: q", 2, "2-D (n_heads, head_dim)");
    const int64_t n_heads = q.shape(0), T = c.length(layer);
    require(q.shape(1) == c.head_dim, "attention_decode: q must be (n_heads, " + std::to_string(c.head_dim) +
                                          ") to match the cache's head_dim, got " + shape_of(q));
    require(n_heads >= c.n_kv_heads && n_heads % c.n_kv_heads == 0,
            "attention_decode: n_heads (" + std::to_string(n_heads) + ") must be a positive multiple of the cache's "
            "n_kv_heads (" + std::to_string(c.n_kv_heads) + ") for grouped-query attention");
    require(T > 0, "attention_decode: layer " + std::to_string(layer) +
                       " of the cache is empty; append this position's k and v first");
    const attention::Shape s{T, n_heads, c.n_kv_heads, c.head_dim};
    py::array_t<float> out({n_heads, c.head_dim});
    float* o = out.mutable_data();
    Aligned<float> scores(size_t(n_heads * T));
    py::gil_scoped_release nogil;
    attention::decode(s, fptr(q), c.keys(layer), c.values(layer), o, scores.data, path);
    return std::move(out);
}

// What the CPU offers, the environment's overrides, and for each kernel the path path="auto"
// takes now (`paths`, from auto_path(), the function path_arg() calls) and the paths it can be
// asked for on this CPU (`available`).
py::dict cpu_features() {
    py::dict paths, available;
    for (const Kernel& k : KERNELS) {
        paths[k.name] = path_name(auto_path(k.widest));
        py::list can;
        for (Path p : {Path::scalar, Path::avx2, Path::avx512})
            if (p <= k.widest && p <= cpu_path()) can.append(path_name(p));
        available[k.name] = can;
    }
    py::dict d;
    d["arch"] = LLMFS_X86 ? "x86_64" : "other";
    d["avx2_fma"] = has_avx2_fma();  // AVX2 + FMA + F16C
    d["avx512f"] = has_avx512f();
    d["avx512"] = has_avx512();  // AVX-512 F + BW + VL + VNNI: the AVX-512 paths can run
    d["force_scalar"] = force_scalar();  // LLMFS_FORCE_SCALAR
    d["force_avx2"] = force_avx2();      // LLMFS_FORCE_AVX2
    d["paths"] = paths;
    d["available"] = available;
    return d;
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "LLMFS C++ kernels (see cpp_kernels/README.md); use them through llmfs.kernels";
    m.def("cpu_features", &cpu_features, "SIMD features of this CPU (run-time) and the path each kernel takes.");

    const auto path = py::arg("path") = "auto";
    m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("threads") = 1, path);
    m.def("matvec", &matvec, py::arg("w"), py::arg("x"), py::kw_only(), py::arg("threads") = 1, path);

    m.def("quantize_q8_0", [](const py::handle& w, const py::handle& p) { return quantize(Q8_0, w, p); },
          py::arg("w"), py::kw_only(), path);
    m.def("quantize_q4_0", [](const py::handle& w, const py::handle& p) { return quantize(Q4_0, w, p); },
          py::arg("w"), py::kw_only(), path);
    m.def("dequantize_q8_0", [](const py::handle& q, int64_t cols, const py::handle& p) {
        return dequantize(Q8_0, q, cols, p);
    }, py::arg("q"), py::arg("cols"), py::kw_only(), path);
    m.def("dequantize_q4_0", [](const py::handle& q, int64_t cols, const py::handle& p) {
        return dequantize(Q4_0, q, cols, p);
    }, py::arg("q"), py::arg("cols"), py::kw_only(), path);
    m.def("matvec_q8_0", [](const py::handle& q, const py::handle& x, int64_t cols, int threads, const py::handle& p) {
        return matvec_quantized(Q8_0, q, x, cols, threads, p);
    }, py::arg("q"), py::arg("x"), py::arg("cols"), py::kw_only(), py::arg("threads") = 1, path);
    m.def("matvec_q4_0", [](const py::handle& q, const py::handle& x, int64_t cols, int threads, const py::handle& p) {
        return matvec_quantized(Q4_0, q, x, cols, threads, p);
    }, py::arg("q"), py::arg("x"), py::arg("cols"), py::kw_only(), py::arg("threads") = 1, path);

    py::class_<KVCache>(m, "KVCache")
        .def(py::init<int64_t, int64_t, int64_t, int64_t>(), py::arg("n_layers"), py::arg("n_kv_heads"),
             py::arg("max_seq_len"), py::arg("head_dim"))
        .def("append", &append, py::arg("layer"), py::arg("k"), py::arg("v"))
        .def("keys", [](KVCache& c, int64_t layer) { return cache_view(c, layer, false); }, py::arg("layer"))
        .def("values", [](KVCache& c, int64_t layer) { return cache_view(c, layer, true); }, py::arg("layer"))
        .def("length", [](const KVCache& c, int64_t layer) {
            return c.length(index_arg(layer, c.n_layers, "KVCache.length: layer"));
        }, py::arg("layer"))
        .def("__len__", [](const KVCache& c) {  // positions stored in every layer
            int64_t n = c.length(0);
            for (int64_t l = 1; l < c.n_layers; ++l) n = std::min(n, c.length(l));
            return n;
        })
        .def("reset", &KVCache::reset)
        .def_property_readonly("nbytes", &KVCache::nbytes)
        .def_readonly("n_layers", &KVCache::n_layers)
        .def_readonly("n_kv_heads", &KVCache::n_kv_heads)
        .def_readonly("max_seq_len", &KVCache::max_seq_len)
        .def_readonly("head_dim", &KVCache::head_dim);

    m.def("attention_decode", &attention_decode, py::arg("q"), py::arg("cache"), py::arg("layer"), py::kw_only(), path);

    m.def("_peak_gflops", [] { return roofline::peak_gflops(gemm::WIDEST); },
          "One core's float32 FMA ceiling (GFLOP/s) with the SIMD that matmul's automatic path uses, 0 on the scalar path.");
    m.def("_read_gbps", [](const py::handle& x_, int repeats) {
        const py::array x = f32_arg(x_, "_read_gbps: x", 1, "1-D (n,)");
        require(repeats >= 1 && repeats <= 1000, "_read_gbps: repeats must be in [1, 1000]");
        py::gil_scoped_release nogil;
        return roofline::read_gbps(fptr(x), x.size(), repeats);
    }, py::arg("x"), py::arg("repeats") = 5, "GB/s of one core summing x (make it larger than the caches).");
}
