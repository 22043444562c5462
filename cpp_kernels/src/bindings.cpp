// bindings.cpp: the only file that knows about Python. Every kernel lives in its own header.
#include <pybind11/pybind11.h>

#include "cpu.h"

namespace py = pybind11;

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "LLMFS C++ kernels (see cpp_kernels/README.md)";
    m.def("cpu_features", [] {
        py::dict d;
        d["avx2_fma"] = llmfs::has_avx2_fma();
        d["avx512f"] = llmfs::has_avx512f();
        d["force_scalar"] = llmfs::force_scalar();
        return d;
    }, "SIMD features of this CPU, as detected at run time.");
}
