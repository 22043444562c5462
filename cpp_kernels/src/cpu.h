// cpu.h: which SIMD instruction sets this CPU offers, asked at run time.
//
// The module is compiled for baseline x86-64 (SSE2 only) or arm64. The fast kernels carry
// LLMFS_AVX2 (= __attribute__((target("avx2,fma,f16c")))) so the compiler may use those
// instructions inside them, and they are only called when use_avx2() says yes. Without this
// check an AVX2 instruction on an older CPU would kill the process with SIGILL.
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>

// LLMFS_NO_X86 compiles the portable build on x86 too: what arm64 gets, used by the tests.
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(LLMFS_NO_X86)
#define LLMFS_X86 1
#include <immintrin.h>
// AVX2 (256-bit integer ops), FMA (fused multiply-add) and F16C (fp16 <-> fp32) arrived
// together on Intel Haswell (2013) and AMD Zen, so the fast path asks for all three.
#define LLMFS_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define LLMFS_X86 0
#endif

namespace llmfs {

// The scalar switch from Python (kernels.scalar_path()); the environment variable works too.
inline std::atomic<bool>& scalar_switch() {
    static std::atomic<bool> on{false};
    return on;
}

inline bool force_scalar() {
    // LLMFS_FORCE_SCALAR=1 makes every kernel take its scalar reference path.
    if (scalar_switch().load(std::memory_order_relaxed)) return true;
    const char* v = std::getenv("LLMFS_FORCE_SCALAR");
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}

inline bool has_avx2_fma() {
#if LLMFS_X86
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            __builtin_cpu_supports("f16c");
    return yes;
#else
    return false;
#endif
}

inline bool has_avx512f() {
#if LLMFS_X86
    static const bool yes = __builtin_cpu_supports("avx512f");
    return yes;
#else
    return false;
#endif
}

// The question every kernel asks before it picks a path.
inline bool use_avx2() { return has_avx2_fma() && !force_scalar(); }

}  // namespace llmfs
