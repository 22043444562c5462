// cpu.h: which SIMD instruction sets this CPU offers, asked at run time.
//
// The module is compiled for baseline x86-64 (SSE2 only) or arm64. The fast kernels carry
// LLMFS_AVX2 (= __attribute__((target("avx2,fma,f16c")))) so the compiler may use those
// instructions inside them, and they are only called when use_avx2() says yes. Without this
// check an AVX2 instruction on an older CPU would kill the process with SIGILL. Three kernels,
// matmul, matvec and matvec_q4_0, also have an AVX-512 version (LLMFS_AVX512), behind use_avx512().
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
// AVX-512 with byte/word ops (BW), 128/256-bit forms (VL) and the int8 dot product VNNI:
// Intel Ice Lake (2019) and later server/desktop cores, AMD Zen 4 (2022) and later.
#define LLMFS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
// GCC 12 warns, wrongly, that its own AVX-512 intrinsics read an uninitialised value wherever
// they are inlined (GCC bug 105593, fixed in GCC 13): AVX-512 code sits between these two.
#define LLMFS_AVX512_BEGIN \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
        _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define LLMFS_AVX512_END _Pragma("GCC diagnostic pop")
#else
#define LLMFS_X86 0
#endif

namespace llmfs {

// The scalar switch from Python (kernels.scalar_path()); the environment variable works too.
inline std::atomic<bool>& scalar_switch() {
    static std::atomic<bool> on{false};
    return on;
}

// The AVX2 switch from Python (kernels.avx2_path()): AVX2 code even where AVX-512 is there.
inline std::atomic<bool>& avx2_switch() {
    static std::atomic<bool> on{false};
    return on;
}

// An environment variable set to anything but "" or "0".
inline bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}

// LLMFS_FORCE_SCALAR=1 makes every kernel take its scalar reference path.
inline bool force_scalar() { return scalar_switch().load(std::memory_order_relaxed) || env_flag("LLMFS_FORCE_SCALAR"); }

// LLMFS_FORCE_AVX2=1 keeps the AVX-512 code out (the tests compare both paths on one machine).
inline bool force_avx2() { return avx2_switch().load(std::memory_order_relaxed) || env_flag("LLMFS_FORCE_AVX2"); }

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

inline bool has_avx512() {
#if LLMFS_X86
    static const bool yes = has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    return yes;
#else
    return false;
#endif
}

// The question every kernel asks before it picks a path.
inline bool use_avx2() { return has_avx2_fma() && !force_scalar(); }
inline bool use_avx512() { return has_avx512() && !force_scalar() && !force_avx2(); }

// The three paths of the kernels that have all three (matmul, matvec, matvec_q4_0), fastest allowed first.
enum class Path { scalar, avx2, avx512 };
inline Path best_path() { return use_avx512() ? Path::avx512 : use_avx2() ? Path::avx2 : Path::scalar; }

}  // namespace llmfs
