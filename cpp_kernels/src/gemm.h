// gemm.h: C = A · B for row-major float32 matrices, the way BLIS and OpenBLAS do it.
//
//   A: (M, K), row stride lda     B: (K, N), row stride ldb     C: (M, N), row stride ldc
//
// Why not three loops? A naive i-j-k loop reads B column-wise and reloads every operand from
// memory; it runs at ~1 GFLOP/s. Fast GEMM keeps operands close to the arithmetic units:
//
//   for jc in N step NC                 B block  (KC, NC)  packed into Bp  -> lives in L3
//     for pc in K step KC
//       pack B[pc:pc+KC, jc:jc+NC] into NR-wide column slivers
//       for ic in M step MC             A block  (MC, KC)  packed into Ap  -> lives in L2
//         pack A[ic:ic+MC, pc:pc+KC] into MR-tall row slivers
//         for jr in NC step NR          B sliver (KC, NR)                  -> lives in L1
//           for ir in MC step MR        A sliver (MR, KC), streamed from L2
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] += Ap sliver · Bp sliver
//
// The micro-kernel holds the whole MR x NR = 6 x 16 tile of C in 12 AVX registers. Each step k
// loads 16 floats of B (2 registers), broadcasts 6 floats of A, and does 12 FMAs (192 flops):
// the arithmetic never waits for memory. Packing copies the blocks into the exact order the
// micro-kernel reads them, so every load is sequential, and pads edges with zeros so the
// micro-kernel never needs a bounds check (edge tiles are written through a small buffer).
// Where the CPU has AVX-512, kernel_avx512 computes the same tile with 16-float registers.
// The measurements behind the block sizes and the details below: README, "Tuning history".
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu.h"
#include "simd.h"
#include "threads.h"

namespace llmfs {

namespace gemm {
constexpr int64_t MR = 6;     // rows of the register tile
constexpr int64_t NR = 16;    // columns of the register tile (2 AVX registers)
constexpr int64_t KC = 256;   // depth of a packed block: A sliver 6 KiB, B sliver 16 KiB (L1)
constexpr int64_t MC = 144;   // rows of the packed A block: 144 KiB (L2)
constexpr int64_t NC = 4080;  // columns of the packed B block: 4 MiB (L3)

constexpr Path WIDEST = Path::avx512;  // matmul's paths: scalar, avx2, avx512

// Ap <- A[0:mc, 0:kc] as ceil(mc/MR) slivers; in each, for k: the MR values A[i..i+MR, k].
// Each row of A is read front to back; rows past mc are zero.
inline void pack_a(int64_t mc, int64_t kc, const float* A, int64_t lda, float* Ap) {
    for (int64_t i = 0; i < mc; i += MR, Ap += MR * kc) {
        const int64_t m = std::min(MR, mc - i);
        for (int64_t r = 0; r < MR; ++r) {
            const float* a = A + (i + r) * lda;
            if (r < m)
                for (int64_t k = 0; k < kc; ++k) Ap[k * MR + r] = a[k];
            else
                for (int64_t k = 0; k < kc; ++k) Ap[k * MR + r] = 0.0f;
        }
    }
}

#if LLMFS_X86
// The same with AVX2, for whole slivers: 8 columns of the 6 rows at a time are loaded (plus two
// zero rows), transposed in registers (simd.h), and written out as 8 consecutive groups of 6.
// The scalar loop above writes with a stride of 6 floats, which makes it several times slower,
// a few percent of a whole product. The last partial sliver and the last kc % 8 columns use
// the scalar code.
LLMFS_AVX2 inline void pack_a_avx2(int64_t mc, int64_t kc, const float* A, int64_t lda, float* Ap) {
    static_assert(MR == 6, "the transposing pack below is written for 6-row slivers");
    int64_t i = 0;
    for (; i + MR <= mc; i += MR, Ap += MR * kc) {
        const float* a = A + i * lda;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r0 = _mm256_loadu_ps(a + k), r1 = _mm256_loadu_ps(a + lda + k);
            __m256 r2 = _mm256_loadu_ps(a + 2 * lda + k), r3 = _mm256_loadu_ps(a + 3 * lda + k);
            __m256 r4 = _mm256_loadu_ps(a + 4 * lda + k), r5 = _mm256_loadu_ps(a + 5 * lda + k);
            __m256 r6 = _mm256_setzero_ps(), r7 = r6;
            transpose8(r0, r1, r2, r3, r4, r5, r6, r7);  // rj = column k + j: 6 values and 2 zeros
            float* d = Ap + k * MR;  // 8 floats stored per column, each overlapping the next by 2
            _mm256_storeu_ps(d, r0), _mm256_storeu_ps(d + 6, r1), _mm256_storeu_ps(d + 12, r2);
            _mm256_storeu_ps(d + 18, r3), _mm256_storeu_ps(d + 24, r4), _mm256_storeu_ps(d + 30, r5);
            _mm256_storeu_ps(d + 36, r6);
            _mm_storeu_ps(d + 42, _mm256_castps256_ps128(r7));  // the last one exactly: 4 + 2 floats
            _mm_storel_pi(reinterpret_cast<__m64*>(d + 46), _mm256_extractf128_ps(r7, 1));
        }
        for (; k < kc; ++k)
            for (int64_t r = 0; r < MR; ++r) Ap[k * MR + r] = a[r * lda + k];
    }
    if (i < mc) pack_a(mc - i, kc, A + i * lda, lda, Ap);
}
#endif

// Bp <- B[0:kc, 0:nc] as ceil(nc/NR) slivers; in each, for k: the NR values B[k, j..j+NR].
// Each row of B is read front to back; columns past nc are zero.
inline void pack_b(int64_t kc, int64_t nc, const float* B, int64_t ldb, float* Bp) {
    const int64_t full = nc / NR;  // whole slivers
    for (int64_t k = 0; k < kc; ++k) {
        const float* b = B + k * ldb;
        for (int64_t s = 0; s < full; ++s) std::memcpy(Bp + (s * kc + k) * NR, b + s * NR, NR * sizeof(float));
        if (full * NR < nc) {
            float* dst = Bp + (full * kc + k) * NR;
            const int64_t n = nc - full * NR;
            std::memcpy(dst, b + full * NR, size_t(n) * sizeof(float));
            std::fill(dst + n, dst + NR, 0.0f);
        }
    }
}

// The micro-kernel contract: C[0:MR, 0:NR] (row stride ldc) = (accumulate ? C : 0) + Ap · Bp,
// Ap: (kc, MR) packed, Bp: (kc, NR) packed, both 64-byte aligned.
using MicroKernel = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                             bool accumulate);
using PackA = void (*)(int64_t mc, int64_t kc, const float* A, int64_t lda, float* Ap);

// Scalar reference micro-kernel: the same arithmetic in plain C++.
inline void kernel_scalar(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                          bool accumulate) {
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k, Ap += MR, Bp += NR)
        for (int64_t r = 0; r < MR; ++r)
            for (int64_t j = 0; j < NR; ++j) acc[r][j] += Ap[r] * Bp[j];
    for (int64_t r = 0; r < MR; ++r)
        for (int64_t j = 0; j < NR; ++j) C[r * ldc + j] = (accumulate ? C[r * ldc + j] : 0.0f) + acc[r][j];
}

#if LLMFS_X86
// AVX2+FMA micro-kernel: 12 accumulators c<row><half> + 2 B registers + 1 A broadcast = 15 of
// the 16 ymm registers. Per k: 2 loads, 6 broadcasts, 12 FMAs.
LLMFS_AVX2 inline void kernel_avx2(int64_t kc, const float* Ap, const float* Bp, float* C,
                                   int64_t ldc, bool accumulate) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    // Ask for the C tile now, so it is in L1 when the sum is added to it ~1500 cycles later: the
    // first and the last float of each row (a row of 16 floats spans two cache lines unless C is
    // 64-byte aligned; prefetching only the first line leaves the other one to miss).
    for (int64_t r = 0; r < MR; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + NR - 1), _MM_HINT_T0);
    }
    for (int64_t k = 0; k < kc; ++k, Ap += MR, Bp += NR) {
        _mm_prefetch(reinterpret_cast<const char*>(Ap + 8 * MR), _MM_HINT_T0);
        const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
        __m256 a = _mm256_broadcast_ss(Ap + 0);
        c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(Ap + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(Ap + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(Ap + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(Ap + 4);
        c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(Ap + 5);
        c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    const __m256 tile[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int64_t r = 0; r < MR; ++r) {
        float* c = C + r * ldc;
        __m256 lo = tile[r][0], hi = tile[r][1];
        if (accumulate) lo = _mm256_add_ps(lo, _mm256_loadu_ps(c)), hi = _mm256_add_ps(hi, _mm256_loadu_ps(c + 8));
        _mm256_storeu_ps(c, lo);
        _mm256_storeu_ps(c + 8, hi);
    }
}
#endif

#if LLMFS_X86
LLMFS_AVX512_BEGIN
// AVX-512 micro-kernel for the same 6 x 16 tile and the same packing: one 16-float register
// per row of C. Six accumulators alone would leave the FMA units waiting (an FMA takes 4 cycles
// and the core can start 2 per cycle, so 8+ independent sums are needed), so k is unrolled by
// two with a second set of 6 accumulators (even and odd k), added at the end: 12 independent
// FMA chains, 14 of the 32 zmm registers.
LLMFS_AVX512 inline void kernel_avx512(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                                       bool accumulate) {
    __m512 c[MR], d[MR];  // (the loops over the 6 rows are unrolled: all 12 stay in registers)
    for (int64_t r = 0; r < MR; ++r) c[r] = d[r] = _mm512_setzero_ps();
    for (int64_t r = 0; r < MR; ++r) {  // the C tile, both lines of each row (as in kernel_avx2)
        _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + NR - 1), _MM_HINT_T0);
    }
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2, Ap += 2 * MR, Bp += 2 * NR) {
        const __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + NR);
        for (int64_t r = 0; r < MR; ++r) {
            c[r] = _mm512_fmadd_ps(_mm512_set1_ps(Ap[r]), b0, c[r]);
            d[r] = _mm512_fmadd_ps(_mm512_set1_ps(Ap[MR + r]), b1, d[r]);
        }
    }
    if (k < kc) {  // odd kc: the last k
        const __m512 b0 = _mm512_load_ps(Bp);
        for (int64_t r = 0; r < MR; ++r) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(Ap[r]), b0, c[r]);
    }
    for (int64_t r = 0; r < MR; ++r) {
        __m512 row = _mm512_add_ps(c[r], d[r]);
        if (accumulate) row = _mm512_add_ps(row, _mm512_loadu_ps(C + r * ldc));
        _mm512_storeu_ps(C + r * ldc, row);
    }
}
LLMFS_AVX512_END
#endif

// Floats of packing space one thread needs for a (M, N, K) product, rounded up to whole cache
// lines (16 floats) so that every buffer carved out of one allocation stays 64-byte aligned.
inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
inline int64_t ap_size(int64_t M, int64_t K) {
    return round16((std::min(M, MC) + MR - 1) / MR * MR * std::min(K, KC));
}
inline int64_t bp_size(int64_t N, int64_t K) {
    return round16((std::min(N, NC) + NR - 1) / NR * NR * std::min(K, KC));
}

// One thread's GEMM on the whole (M, N, K) problem, with its own packing buffers Ap and Bp.
inline void gemm_serial(MicroKernel kernel, PackA pack, int64_t M, int64_t N, int64_t K, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, float* Ap,
                        float* Bp) {
    if (K == 0) {  // an empty sum: C = 0
        for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
        return;
    }
    alignas(64) float edge[MR * NR];  // a partial tile goes through here
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min(KC, K - pc);
            const bool accumulate = pc > 0;
            pack_b(kc, nc, B + pc * ldb + jc, ldb, Bp);
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = std::min(MC, M - ic);
                pack(mc, kc, A + ic * lda + pc, lda, Ap);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t nr = std::min(NR, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int64_t mr = std::min(MR, mc - ir);
                        float* c = C + (ic + ir) * ldc + jc + jr;
                        const float* ap = Ap + ir * kc;
                        const float* bp = Bp + jr * kc;
                        if (mr == MR && nr == NR) {
                            kernel(kc, ap, bp, c, ldc, accumulate);
                            continue;
                        }
                        kernel(kc, ap, bp, edge, NR, false);
                        for (int64_t r = 0; r < mr; ++r)
                            for (int64_t j = 0; j < nr; ++j)
                                c[r * ldc + j] = (accumulate ? c[r * ldc + j] : 0.0f) + edge[r * NR + j];
                    }
                }
            }
        }
    }
}

// C (M, N) = A (M, K) · B (K, N), all C-contiguous. With threads > 1 the rows of C (or its
// columns, when C is wide and short) are split between threads; each packs its own blocks.
// `path`: scalar, avx2 or avx512 micro-kernel (cpu.h).
inline void matmul(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
                   int threads, Path path) {
    MicroKernel kernel = kernel_scalar;
    PackA pack = pack_a;
#if LLMFS_X86
    if (path != Path::scalar) kernel = path == Path::avx512 ? kernel_avx512 : kernel_avx2, pack = pack_a_avx2;
#else
    (void)path;
#endif
    const bool split_rows = M >= N;
    const int64_t n = split_rows ? M : N, grain = split_rows ? MR : NR;
    threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, (n + grain - 1) / grain)));
    const int64_t ap = ap_size(M, K), bp = bp_size(N, K);
    Aligned<float> buf(size_t(threads) * size_t(ap + bp));  // before any thread starts
    parallel_for(threads, n, grain, [&](int64_t b, int64_t e, int t) {
        float* Ap = buf.data + int64_t(t) * (ap + bp);
        float* Bp = Ap + ap;
        if (split_rows)
            gemm_serial(kernel, pack, e - b, N, K, A + b * K, K, B, N, C + b * N, N, Ap, Bp);
        else
            gemm_serial(kernel, pack, M, e - b, K, A, K, B + b, N, C + b, N, Ap, Bp);
    });
}

}  // namespace gemm
}  // namespace llmfs
