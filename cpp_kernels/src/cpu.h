// cpu.h: which SIMD instruction sets this CPU offers, asked at run time, and the one function
// that decides which path a kernel runs.
//
// The module is compiled for baseline x86-64 (SSE2 only) or arm64. The fast kernels carry
// LLMFS_AVX2 (= __attribute__((target("avx2,fma,f16c")))) so the compiler may use those
// instructions inside them, and they only run when the caller passes them Path::avx2 or wider,
// which the bindings allow only where the CPU has it. Without that check an AVX2 instruction on
// an older CPU would kill the process with SIGILL. Three kernels, matmul, matvec and
// matvec_q4_0, also have an AVX-512 version (LLMFS_AVX512).
#pragma once

#include <algorithm>
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

// The one dispatch convention: every kernel takes a Path and runs the widest of its versions
// that the Path allows (a kernel without an AVX-512 version runs AVX2 when given avx512). The
// values are ordered: each path needs what the one before it needs, and more.
enum class Path { scalar, avx2, avx512 };

inline const char* path_name(Path p) { return p == Path::avx512 ? "avx512" : p == Path::avx2 ? "avx2" : "scalar"; }

// An environment variable set to anything but "" or "0".
inline bool env_flag(const char* name) {
    const char* v = std::getenv(name);
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

inline bool has_avx512() {
#if LLMFS_X86
    static const bool yes = has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    return yes;
#else
    return false;
#endif
}

// The widest path this CPU can run at all: any path up to it may be asked for explicitly.
inline Path cpu_path() { return has_avx512() ? Path::avx512 : has_avx2_fma() ? Path::avx2 : Path::scalar; }

// LLMFS_FORCE_SCALAR=1 and LLMFS_FORCE_AVX2=1 narrow the automatic choice for a whole process
// (to compare paths on one machine, or to keep AVX-512 out); explicit paths are not affected.
inline bool force_scalar() { return env_flag("LLMFS_FORCE_SCALAR"); }
inline bool force_avx2() { return env_flag("LLMFS_FORCE_AVX2"); }

// THE dispatch decision: the path that a kernel whose widest version is `widest` runs when the
// caller leaves the choice to it (Python's path="auto"). The bindings call it for every kernel
// call and cpu_features() for its report, so the report cannot drift from what runs.
inline Path auto_path(Path widest) {
    Path p = std::min(widest, cpu_path());
    if (force_avx2()) p = std::min(p, Path::avx2);
    if (force_scalar()) p = Path::scalar;
    return p;
}

}  // namespace llmfs
