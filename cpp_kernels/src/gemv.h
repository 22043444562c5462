// gemv.h: y = W · x for a row-major float32 matrix, the operation of every decode step.
//
//   W: (rows, cols)   x: (cols,)   y: (rows,)
//
// Each weight is used once (2 flops per 4 bytes), so GEMV is limited by memory bandwidth, not
// arithmetic: the goal is to stream W at the speed of DRAM. The AVX2 kernel reads 4 rows at a
// time (4 sequential streams that the hardware prefetcher follows) with 2 accumulators each, so
// enough loads are in flight; x (16 KiB for 4096 columns) stays in L1 the whole time.
#pragma once

#include <cstdint>

#include "cpu.h"
#include "simd.h"
#include "threads.h"

namespace llmfs {
namespace gemv {

// Scalar reference: one dot product per row.
inline void rows_scalar(int64_t r0, int64_t r1, int64_t cols, const float* W, const float* x, float* y) {
    for (int64_t i = r0; i < r1; ++i) {
        const float* w = W + i * cols;
        float s = 0.0f;
        for (int64_t j = 0; j < cols; ++j) s += w[j] * x[j];
        y[i] = s;
    }
}

#if LLMFS_X86
LLMFS_AVX2 inline void rows_avx2(int64_t r0, int64_t r1, int64_t cols, const float* W, const float* x, float* y) {
    const int64_t c16 = cols & ~int64_t(15);  // columns handled 16 at a time
    int64_t i = r0;
    for (; i + 4 <= r1; i += 4) {
        const float* w0 = W + i * cols;
        const float* w1 = w0 + cols;
        const float* w2 = w1 + cols;
        const float* w3 = w2 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int64_t j = 0; j < c16; j += 16) {
            const __m256 xa = _mm256_loadu_ps(x + j), xb = _mm256_loadu_ps(x + j + 8);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + j), xa, a0);
            b0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + j + 8), xb, b0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + j), xa, a1);
            b1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + j + 8), xb, b1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + j), xa, a2);
            b2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + j + 8), xb, b2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + j), xa, a3);
            b3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + j + 8), xb, b3);
        }
        float s0 = hsum(_mm256_add_ps(a0, b0)), s1 = hsum(_mm256_add_ps(a1, b1));
        float s2 = hsum(_mm256_add_ps(a2, b2)), s3 = hsum(_mm256_add_ps(a3, b3));
        for (int64_t j = c16; j < cols; ++j) {  // the last cols % 16 columns
            s0 += w0[j] * x[j], s1 += w1[j] * x[j], s2 += w2[j] * x[j], s3 += w3[j] * x[j];
        }
        y[i] = s0, y[i + 1] = s1, y[i + 2] = s2, y[i + 3] = s3;
    }
    for (; i < r1; ++i) {  // the last rows % 4 rows, one at a time
        const float* w = W + i * cols;
        __m256 a = _mm256_setzero_ps(), b = a;
        for (int64_t j = 0; j < c16; j += 16) {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(w + j), _mm256_loadu_ps(x + j), a);
            b = _mm256_fmadd_ps(_mm256_loadu_ps(w + j + 8), _mm256_loadu_ps(x + j + 8), b);
        }
        float s = hsum(_mm256_add_ps(a, b));
        for (int64_t j = c16; j < cols; ++j) s += w[j] * x[j];
        y[i] = s;
    }
}
#endif

// y (rows,) = W (rows, cols) · x (cols,); threads split the rows.
inline void matvec(int64_t rows, int64_t cols, const float* W, const float* x, float* y, int threads, bool scalar) {
    parallel_for(threads, rows, 4, [&](int64_t r0, int64_t r1, int) {
#if LLMFS_X86
        if (!scalar) return rows_avx2(r0, r1, cols, W, x, y);
#else
        (void)scalar;
#endif
        rows_scalar(r0, r1, cols, W, x, y);
    });
}

}  // namespace gemv
}  // namespace llmfs
