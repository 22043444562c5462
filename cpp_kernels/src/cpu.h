// cpu.h: which SIMD instruction sets this CPU offers, asked at run time.
// The module is compiled for baseline x86-64 (or arm64); faster kernels carry
// __attribute__((target("avx2,fma"))) and are only called when these say yes.
#pragma once

#include <cstdlib>
#include <cstring>

namespace llmfs {

inline bool force_scalar() {
    // LLMFS_FORCE_SCALAR=1 makes every kernel take its scalar reference path.
    const char* v = std::getenv("LLMFS_FORCE_SCALAR");
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}

inline bool has_avx2_fma() {
#if defined(__x86_64__) || defined(_M_X64)
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
#else
    return false;
#endif
}

inline bool has_avx512f() {
#if defined(__x86_64__) || defined(_M_X64)
    static const bool yes = __builtin_cpu_supports("avx512f");
    return yes;
#else
    return false;
#endif
}

}  // namespace llmfs
