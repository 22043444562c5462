// gemv.h: y = W · x for a row-major float32 matrix, the operation of every decode step.
//
//   W: (rows, cols)   x: (cols,)   y: (rows,)
//
// Each weight is used once (2 flops per 4 bytes), so GEMV is limited by memory bandwidth, not
// arithmetic: the goal is to stream W at the speed of DRAM. The AVX2 kernel reads 4 rows at a
// time (4 sequential streams that the hardware prefetcher follows) with 2 accumulators each, so
// enough loads are in flight; x (16 KiB for 4096 columns) stays in L1 the whole time.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu.h"
#include "simd.h"
#include "threads.h"

namespace llmfs {
namespace gemv {

constexpr Path WIDEST = Path::avx512;  // matvec's paths: scalar, avx2, avx512

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

// AVX-512: the same 4 rows x 2 accumulators, 32 columns per step, with the loads of W aligned
// to 64 bytes. NumPy's arrays start 16 bytes into a cache line, so a 32-byte load straddles two
// lines every other time; a 64-byte load at a 64-byte boundary is exactly one line. The first
// `lead` columns (0 to 15, up to that boundary of row i) and the last ones go to a scalar tail;
// when cols % 16 != 0 only the first of the 4 rows is aligned (still right, a little slower).
// From DRAM this streams faster than the AVX2 kernel (README, "Tuning history").
LLMFS_AVX512_BEGIN
LLMFS_AVX512 inline void rows_avx512(int64_t r0, int64_t r1, int64_t cols, const float* W, const float* x, float* y) {
    int64_t i = r0;
    for (; i + 4 <= r1; i += 4) {
        const float* w[4] = {W + i * cols, W + (i + 1) * cols, W + (i + 2) * cols, W + (i + 3) * cols};
        const int64_t lead = std::min<int64_t>(cols, (64 - int64_t(reinterpret_cast<uintptr_t>(w[0]) % 64)) % 64 / 4);
        const int64_t end = lead + (cols - lead) / 32 * 32;  // columns [lead, end) 32 at a time
        __m512 a[4], b[4];  // (the loops over the 4 rows are unrolled: all 8 stay in registers)
        for (int r = 0; r < 4; ++r) a[r] = b[r] = _mm512_setzero_ps();
        for (int64_t j = lead; j < end; j += 32) {
            const __m512 xa = _mm512_loadu_ps(x + j), xb = _mm512_loadu_ps(x + j + 16);
            for (int r = 0; r < 4; ++r) {
                a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w[r] + j), xa, a[r]);
                b[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w[r] + j + 16), xb, b[r]);
            }
        }
        for (int r = 0; r < 4; ++r) {
            float s = _mm512_reduce_add_ps(_mm512_add_ps(a[r], b[r]));
            for (int64_t j = 0; j < lead; ++j) s += w[r][j] * x[j];    // before the aligned columns
            for (int64_t j = end; j < cols; ++j) s += w[r][j] * x[j];  // and after them
            y[i + r] = s;
        }
    }
    rows_avx2(i, r1, cols, W, x, y);  // the last rows % 4 rows
}
LLMFS_AVX512_END
#endif

// y (rows,) = W (rows, cols) · x (cols,); threads split the rows. `path`: scalar, avx2, avx512 (cpu.h).
inline void matvec(int64_t rows, int64_t cols, const float* W, const float* x, float* y, int threads, Path path) {
    parallel_for(threads, rows, 4, [&](int64_t r0, int64_t r1, int) {
#if LLMFS_X86
        if (path == Path::avx512) return rows_avx512(r0, r1, cols, W, x, y);
        if (path == Path::avx2) return rows_avx2(r0, r1, cols, W, x, y);
#else
        (void)path;
#endif
        rows_scalar(r0, r1, cols, W, x, y);
    });
}

}  // namespace gemv
}  // namespace llmfs
