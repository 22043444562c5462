// roofline.h: what this machine can do at best on one core, for the benchmark's "% of limit".
//
//   peak_gflops: 12 independent chains of 8-wide FMAs (2 flops per lane), nothing else, or of
//                16-wide ones where the AVX-512 paths run; this is the arithmetic ceiling of
//                any float32 kernel here (GEMM).
//   read_gbps:   sum a buffer much larger than the caches (4 streams); this is the
//                memory ceiling of the bandwidth-bound kernels (GEMV, quantized GEMV, attention).
#pragma once

#include <algorithm>
#include <cstdint>
#include <ctime>

#include "cpu.h"
#include "simd.h"

namespace llmfs {
namespace roofline {

// CPU time of the calling thread: on a shared machine it leaves out the moments another
// process holds the core (the benchmark times the kernels the same way).
inline double thread_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

#if LLMFS_X86
// 12 independent accumulators: enough to keep both FMA units busy despite the 4-cycle latency.
// Each starts from a different value: with 12 identical chains GCC proves them equal and keeps
// ONE, a single latency-bound chain that this function would then count 12 times.
LLMFS_AVX2 inline float fma_chains(int64_t n) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.0f + 0.01f * float(i));
    for (int64_t k = 0; k < n; ++k)
        for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
    __m256 s = a[0];
    for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
    return hsum(s);  // used: not optimised away
}

LLMFS_AVX512_BEGIN
// The same with 16-wide FMAs (a core with two 512-bit FMA units, e.g. Zen 5, doubles its peak).
LLMFS_AVX512 inline float fma_chains_avx512(int64_t n) {
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.0f + 0.01f * float(i));
    for (int64_t k = 0; k < n; ++k)
        for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
    for (int i = 1; i < 12; ++i) a[0] = _mm512_add_ps(a[0], a[i]);
    return _mm512_reduce_add_ps(a[0]);
}
LLMFS_AVX512_END

// Sum x[0..n) reading its four quarters side by side: one core needs several independent
// streams to reach DRAM bandwidth (see quant.h).
LLMFS_AVX2 inline float sum_avx2(const float* x, int64_t n) {
    const int64_t q = n / 32 * 8;  // floats per quarter, a multiple of 8
    const float *x0 = x, *x1 = x + q, *x2 = x + 2 * q, *x3 = x + 3 * q;
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (int64_t i = 0; i < q; i += 8) {
        a = _mm256_add_ps(a, _mm256_loadu_ps(x0 + i));
        b = _mm256_add_ps(b, _mm256_loadu_ps(x1 + i));
        c = _mm256_add_ps(c, _mm256_loadu_ps(x2 + i));
        d = _mm256_add_ps(d, _mm256_loadu_ps(x3 + i));
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
}
#endif

// GFLOP/s of the FMA loop of the widest path the automatic choice takes for GEMM (0 on the
// scalar path: it has no single honest ceiling).
inline double peak_gflops(Path widest) {
#if LLMFS_X86
    const Path path = auto_path(widest);
    if (path == Path::scalar) return 0.0;
    const int64_t n = 20000000;  // 3.8e9 flops (AVX2), ~0.04 s (callers take the best of several)
    const bool wide = path == Path::avx512;
    const double t0 = thread_seconds();
    volatile float sink = wide ? fma_chains_avx512(n) : fma_chains(n);
    (void)sink;
    return double(n) * 12 * (wide ? 32 : 16) / (thread_seconds() - t0) / 1e9;
#else
    (void)widest;
    return 0.0;
#endif
}

// GB/s of summing x (n floats), the best of `repeats` passes.
inline double read_gbps(const float* x, int64_t n, int repeats) {
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
        const double t0 = thread_seconds();
        float s = 0.0f;
#if LLMFS_X86
        if (has_avx2_fma()) s = sum_avx2(x, n);
        else
#endif
            for (int64_t i = 0; i < n; ++i) s += x[i];
        volatile float sink = s;
        (void)sink;
        best = std::min(best, thread_seconds() - t0);
    }
    return double(n) * sizeof(float) / best / 1e9;
}

}  // namespace roofline
}  // namespace llmfs
