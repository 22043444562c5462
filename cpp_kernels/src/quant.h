// quant.h: ggml's Q8_0 and Q4_0 block formats, and matrix-vector products on them.
//
// A row of `cols` floats is cut into blocks of 32. Each block stores one scale d (fp16) and 32
// small integers q with x ~= d * q. The bytes are exactly ggml's (llama.cpp, GGUF files):
//
//   block_q8_0, 34 bytes: d (fp16, little-endian) | q[0..31] as int8, d = max|x| / 127
//   block_q4_0, 18 bytes: d (fp16)                | 16 bytes, byte j = (q[j] | q[j+16] << 4),
//                         q = x/d + 8 in 0..15, d = (the x of largest magnitude) / -8
//
// A quantized matrix (rows, cols) is a uint8 array (rows, cols/32 * block bytes).
//
// Why it is fast: a decode-step matvec is bound by the bytes it reads (gemv.h). Q8_0 reads 34
// bytes per 32 weights instead of 128 (3.8x fewer), Q4_0 18 (7.1x fewer). As ggml does, the
// vector x is quantized to Q8_0 too, once per call (4096 values: microseconds), so the inner
// loop multiplies int8 by int8 (AVX2 maddubs: 32 byte products per instruction), sums each
// block exactly in integers, and goes to float once per 8 blocks (see rows4_avx2 below).
// Q4_0 also has an AVX-512 VNNI kernel (rows4_avx512_q4_0): 64 byte products per instruction.
// The measurements behind the choices below: README, "Tuning history".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu.h"
#include "simd.h"
#include "threads.h"

namespace llmfs {
namespace quant {

constexpr int64_t QK = 32;         // values per block
constexpr int64_t Q8_0_BYTES = 34;  // sizeof(block_q8_0)
constexpr int64_t Q4_0_BYTES = 18;  // sizeof(block_q4_0)

enum class Format { Q8_0, Q4_0 };

// The widest path of each kernel here (dequantize is scalar only). The dispatch code below
// branches on Path (cpu.h) and takes exactly these versions.
constexpr Path quantize_widest(Format f) { return f == Format::Q8_0 ? Path::avx2 : Path::scalar; }
constexpr Path matvec_widest(Format f) { return f == Format::Q8_0 ? Path::avx2 : Path::avx512; }

// ---- fp16 <-> fp32, bit for bit as ggml's portable code (round to nearest even) ----

inline float f32_from_bits(uint32_t w) { float f; std::memcpy(&f, &w, 4); return f; }
inline uint32_t f32_bits(float f) { uint32_t w; std::memcpy(&w, &f, 4); return w; }

inline float fp16_to_fp32(uint16_t h) {
    const uint32_t w = uint32_t(h) << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t result = sign | (two_w < (1u << 27) ? f32_bits(denormalized) : f32_bits(normalized));
    return f32_from_bits(result);
}

inline uint16_t fp32_to_fp16(float f) {
    float base = (std::fabs(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
    return uint16_t((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// The fp16 scale at the start of a block (little-endian, at any byte offset: no aligned load).
inline uint16_t load_d(const uint8_t* block) { uint16_t d; std::memcpy(&d, block, 2); return d; }

// 1/d, or 0 where d is 0 or so small (subnormal) that 1/d overflows: ggml's reference would
// then cast inf/NaN to an integer (undefined); here such blocks quantize to all zeros.
inline float inverse(float d) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    return std::isfinite(id) ? id : 0.0f;
}

// No NaN or infinity in x[0..n): those have all 8 exponent bits set. (Integer ops on the bits,
// so the compiler vectorizes the loop; std::isfinite in a loop with an early exit it does not.)
inline bool all_finite(const float* x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t w;
        std::memcpy(&w, x + i, 4);
        bad |= uint32_t((w & 0x7F800000u) == 0x7F800000u);
    }
    return bad == 0;
}

// ---- quantize / dequantize one block (ggml's quantize_row_*_ref, dequantize_row_*) ----

// x[0..31] -> q[0..31], returns the fp16 scale d.
inline uint16_t quantize_block_q8_0_scalar(const float* x, int8_t* q) {
    float amax = 0.0f;
    for (int64_t j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = inverse(d);
    for (int64_t j = 0; j < QK; ++j) q[j] = int8_t(std::roundf(x[j] * id));  // |x*id| <= 127
    return fp32_to_fp16(d);
}

#if LLMFS_X86
// The same as quantize_block_q8_0_scalar, 8 values per instruction, bit for bit: the maximum is exact
// in any order, x * id is one float multiply either way, and roundf's "halfway cases away from
// zero" is rebuilt from truncation: v = t + f with t = trunc(v) and f = v - t (exact for
// |v| < 2^23), then t moves one step away from zero when |f| >= 0.5.
LLMFS_AVX2 inline uint16_t quantize_block_q8_0_avx2(const float* x, int8_t* q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], amax8 = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i), amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, v[i]));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.0f;
    const __m256 id = _mm256_set1_ps(inverse(d)), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256i n[4];
    for (int i = 0; i < 4; ++i) {
        const __m256 p = _mm256_mul_ps(v[i], id);
        const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(p, t)), half, _CMP_GE_OQ);
        const __m256 step = _mm256_and_ps(away, _mm256_or_ps(_mm256_and_ps(p, sign), one));  // +-1 or 0
        n[i] = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
    }
    // 32 int32 -> 32 int8 (values are in [-127, 127]: no saturation); packs work within 128-bit
    // lanes, so the result comes out as dwords 0 4 1 5 2 6 3 7 and is put back in order.
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(n[0], n[1]), _mm256_packs_epi32(n[2], n[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    return fp32_to_fp16(d);
}
#endif

// x[0..31] -> q[0..31]: the AVX2 code for avx2 and wider, else the reference (same bytes).
inline uint16_t quantize_block_q8_0(const float* x, int8_t* q, Path path) {
#if LLMFS_X86
    if (path != Path::scalar) return quantize_block_q8_0_avx2(x, q);
#else
    (void)path;
#endif
    return quantize_block_q8_0_scalar(x, q);
}

// x[0..31] -> 16 bytes of nibbles, returns the fp16 scale d.
inline uint16_t quantize_block_q4_0(const float* x, uint8_t* qs) {
    float amax = 0.0f, max = 0.0f;  // largest |x|, and that x with its sign
    for (int64_t j = 0; j < QK; ++j)
        if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -8.0f;
    const float id = inverse(d);
    for (int64_t j = 0; j < QK / 2; ++j) {  // x*id is in [-8, 8], so x*id + 8.5 in [0.5, 16.5]
        const int lo = std::min(15, int(x[j] * id + 8.5f));
        const int hi = std::min(15, int(x[j + QK / 2] * id + 8.5f));
        qs[j] = uint8_t(lo | (hi << 4));
    }
    return fp32_to_fp16(d);
}

// w (rows, cols) -> q (rows, cols/32 * 34) or (rows, cols/32 * 18) bytes. cols % 32 == 0.
// (Q8_0 has an AVX2 path, taken for avx2 and wider; both give the same bytes.)
inline void quantize_q8_0(int64_t rows, int64_t cols, const float* w, uint8_t* q, Path path) {
    for (int64_t b = 0; b < rows * cols / QK; ++b, q += Q8_0_BYTES) {
        const uint16_t d = quantize_block_q8_0(w + b * QK, reinterpret_cast<int8_t*>(q + 2), path);
        std::memcpy(q, &d, 2);
    }
}
inline void quantize_q4_0(int64_t rows, int64_t cols, const float* w, uint8_t* q) {
    for (int64_t b = 0; b < rows * cols / QK; ++b, q += Q4_0_BYTES) {
        const uint16_t d = quantize_block_q4_0(w + b * QK, q + 2);
        std::memcpy(q, &d, 2);
    }
}

// q -> w (rows, cols): w = d * q (Q8_0) and d * (q - 8) (Q4_0), as ggml's dequantize_row_*.
inline void dequantize_q8_0(int64_t rows, int64_t cols, const uint8_t* q, float* w) {
    for (int64_t b = 0; b < rows * cols / QK; ++b, q += Q8_0_BYTES, w += QK) {
        const float d = fp16_to_fp32(load_d(q));
        for (int64_t j = 0; j < QK; ++j) w[j] = float(int8_t(q[2 + j])) * d;
    }
}
inline void dequantize_q4_0(int64_t rows, int64_t cols, const uint8_t* q, float* w) {
    for (int64_t b = 0; b < rows * cols / QK; ++b, q += Q4_0_BYTES, w += QK) {
        const float d = fp16_to_fp32(load_d(q));
        for (int64_t j = 0; j < QK / 2; ++j) {
            w[j] = float((q[2 + j] & 0x0F) - 8) * d;
            w[j + QK / 2] = float((q[2 + j] >> 4) - 8) * d;
        }
    }
}

// ---- the vector side: x (cols,) quantized to Q8_0 once per matvec ----

// The AVX2 kernels take 8 blocks (256 values) per step; the Q4_0 one wants x's int8 values
// regrouped to match how it unpacks nibbles: for blocks (2p, 2p+1) of a group, lo[p] holds the
// first 16 values of both, [x_2p[0..15], x_2p+1[0..15]], and hi[p] the last 16.
constexpr int64_t GROUP = 8;
template <Format F> constexpr int64_t block_bytes() { return F == Format::Q8_0 ? Q8_0_BYTES : Q4_0_BYTES; }
constexpr int Q4_ORDER[GROUP] = {0, 2, 4, 6, 1, 3, 5, 7};  // block of each lane after the hadds

// The AVX-512 Q4_0 kernel takes 16 blocks per step and ends with one int32 lane per block,
// lane L holding block Q4_ORDER16(L) (see fold_q4_0_avx512).
constexpr int64_t GROUP16 = 16;
constexpr int64_t Q4_ORDER16(int64_t lane) { return 4 * (lane % 4) + lane / 4; }

// x quantized to Q8_0 (each block's scale rounded to fp16 and back, so the numbers match
// ggml's block_q8_0 exactly), laid out for the kernels. All arrays 64-byte aligned.
struct QuantizedVector {
    int64_t nb;              // blocks
    Aligned<int8_t> q;       // (nb, 32)   the int8 values, block after block
    Aligned<float> d;        // (nb,)      the scales
    Aligned<int32_t> sum;    // (nb,)      sum of each block's 32 values (for Q4_0's "-8")
    // Q4_0: the first and the last 16 values of every block, (nb, 16) each; read as groups of
    // 8 blocks by the AVX2 kernel (pair p of a group = blocks 2p, 2p+1: 32 bytes), of 16 by
    // the AVX-512 one (4 blocks: 64 bytes)
    Aligned<int8_t> lo, hi;
    Aligned<int32_t> sum8;   // (nb/8, 8)  8 * sum, lanes in Q4_ORDER      (AVX2, Q4_0)
    Aligned<float> d8;       // (nb/8, 8)  d, lanes in Q4_ORDER            (AVX2, Q4_0)
    Aligned<int32_t> sum16;  // (nb/16, 16) 8 * sum, lanes in Q4_ORDER16   (AVX-512, Q4_0)
    Aligned<float> d16;      // (nb/16, 16) d, lanes in Q4_ORDER16         (AVX-512, Q4_0)

    QuantizedVector(const float* x, int64_t cols, Format f, Path path)
        : nb(cols / QK), q(size_t(nb * QK)), d(size_t(nb)), sum(size_t(nb)),
          lo(size_t(f == Format::Q4_0 ? nb * QK / 2 : 0)), hi(size_t(f == Format::Q4_0 ? nb * QK / 2 : 0)),
          sum8(size_t(f == Format::Q4_0 ? nb : 0)), d8(size_t(f == Format::Q4_0 ? nb : 0)),
          sum16(size_t(f == Format::Q4_0 ? nb : 0)), d16(size_t(f == Format::Q4_0 ? nb : 0)) {
        for (int64_t b = 0; b < nb; ++b) {
            int8_t* qb = q.data + b * QK;
            d.data[b] = fp16_to_fp32(quantize_block_q8_0(x + b * QK, qb, path));
            int32_t s = 0;
            for (int64_t j = 0; j < QK; ++j) s += qb[j];
            sum.data[b] = s;
        }
        if (f != Format::Q4_0) return;
        for (int64_t b = 0; b < nb; ++b) {
            std::memcpy(lo.data + b * QK / 2, q.data + b * QK, QK / 2);
            std::memcpy(hi.data + b * QK / 2, q.data + b * QK + QK / 2, QK / 2);
        }
        for (int64_t i = 0; i < nb / GROUP * GROUP; ++i) {
            const int64_t b = i / GROUP * GROUP + Q4_ORDER[i % GROUP];
            sum8.data[i] = 8 * sum.data[b], d8.data[i] = d.data[b];
        }
        for (int64_t i = 0; i < nb / GROUP16 * GROUP16; ++i) {
            const int64_t b = i / GROUP16 * GROUP16 + Q4_ORDER16(i % GROUP16);
            sum16.data[i] = 8 * sum.data[b], d16.data[i] = d.data[b];
        }
    }
};

// ---- one block of weights times one block of x: exact integer sums (ggml's vec_dot) ----

inline int32_t block_dot_q8_0(const uint8_t* blk, const int8_t* xq) {
    int32_t s = 0;
    for (int64_t j = 0; j < QK; ++j) s += int32_t(int8_t(blk[2 + j])) * xq[j];
    return s;
}

inline int32_t block_dot_q4_0(const uint8_t* blk, const int8_t* xq) {
    int32_t s = 0;
    for (int64_t j = 0; j < QK / 2; ++j)
        s += ((blk[2 + j] & 0x0F) - 8) * xq[j] + ((blk[2 + j] >> 4) - 8) * xq[j + QK / 2];
    return s;
}

// Scalar reference, and the AVX2 kernels' tail: y += sum over blocks [b0, nb) of
// (integer block dot) * d_w * d_x, for one row w of `bytes`-byte blocks.
template <Format F>
float dot_blocks_scalar(const uint8_t* w, const QuantizedVector& x, int64_t b0) {
    constexpr int64_t bytes = block_bytes<F>();
    float sum = 0.0f;
    for (int64_t b = b0; b < x.nb; ++b) {
        const uint8_t* blk = w + b * bytes;
        const int32_t s = F == Format::Q8_0 ? block_dot_q8_0(blk, x.q.data + b * QK) : block_dot_q4_0(blk, x.q.data + b * QK);
        sum += float(s) * (fp16_to_fp32(load_d(blk)) * x.d.data[b]);
    }
    return sum;
}

#if LLMFS_X86
// ---- AVX2: 8 blocks (a group) per step, 4 rows at a time ----
//
// Per block, the integer dot product is 1-2 instructions on 32 bytes (maddubs multiplies 32
// unsigned x signed byte pairs and adds neighbours into 16 int16). Converting each block to
// float on its own would cost as much again, so 8 blocks' int32 partial sums are first folded
// by horizontal adds (hadd) into ONE vector with one lane per block; that vector is converted,
// multiplied by the 8 scales d_w * d_x and added to the accumulator once per group.
//
// Memory: the weights are read once, front to back, and one core only reaches DRAM bandwidth
// with several independent streams in flight. So 4 rows far apart (i, i+n, i+2n, i+3n) are
// walked together (rows_far_apart below): 4 sequential streams in 4 different places, which
// the hardware prefetcher follows like 4 readers (4 adjacent rows, 2 x 2 rows and 8 rows were
// all slower). The rows go in pairs that share every load of x.
//
// Each stream is also prefetched by software some distance ahead, and the best distance depends
// on the core: short on a Zen 3, ~2 KB on the newer cores measured, where the short one is a
// loss (prefetch distance per core: README, "Tuning history").
template <Format F> inline int64_t prefetch_ahead() {
    static const bool zen3 = __builtin_cpu_is("znver3");
    return zen3 ? (F == Format::Q8_0 ? 272 : 432) : 2176;
}

// Ask for the `bytes` bytes at p, one request per cache line (a prefetch never faults, so
// running past the end of the matrix is harmless).
LLMFS_AVX2 inline void prefetch(const uint8_t* p, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}

// The 8 fp16 scales of a Q8_0 group (blocks 34 bytes apart) as 8 floats, lane k = block k:
// 8 word inserts, then one F16C conversion.
LLMFS_AVX2 inline __m256 scales_q8_0(const uint8_t* p) {
    __m128i h = _mm_cvtsi32_si128(load_d(p));
    h = _mm_insert_epi16(h, load_d(p + 1 * Q8_0_BYTES), 1);
    h = _mm_insert_epi16(h, load_d(p + 2 * Q8_0_BYTES), 2);
    h = _mm_insert_epi16(h, load_d(p + 3 * Q8_0_BYTES), 3);
    h = _mm_insert_epi16(h, load_d(p + 4 * Q8_0_BYTES), 4);
    h = _mm_insert_epi16(h, load_d(p + 5 * Q8_0_BYTES), 5);
    h = _mm_insert_epi16(h, load_d(p + 6 * Q8_0_BYTES), 6);
    h = _mm_insert_epi16(h, load_d(p + 7 * Q8_0_BYTES), 7);
    return _mm256_cvtph_ps(h);
}

// The same for a Q4_0 group (blocks 18 bytes apart), lanes in Q4_ORDER, with 4 loads instead of 8:
// 32 bytes read at p + 32j hold d_2j (at 36j) as word 2j of the low half and d_2j+1 (at 36j + 18)
// as word 2j+1 of the high half, so word blends gather them; then one more blend and a shuffle.
LLMFS_AVX2 inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
LLMFS_AVX2 inline __m256 scales_q4_0(const uint8_t* p) {
    __m256i v = _mm256_blend_epi16(loadu256(p), loadu256(p + 32), 0x0C);  // words 0-1 from p, 2-3 from p + 32, ...
    v = _mm256_blend_epi16(v, loadu256(p + 64), 0x30);
    v = _mm256_blend_epi16(v, loadu256(p + 96), 0xC0);              // low half: d0 . d2 . d4 . d6 .  high: . d1 . d3 . d5 . d7
    const __m128i h = _mm_blend_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1), 0xAA);  // d0..d7
    return _mm256_cvtph_ps(_mm_shuffle_epi8(h, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15)));
}

// Q8_0 block: 8 int32 partial sums of w * x. maddubs wants unsigned * signed bytes, so it gets
// |w| and x with the sign of w (sign_epi8): the products are unchanged.
LLMFS_AVX2 inline __m256i block8_q8_0(const uint8_t* blk, __m256i x) {
    const __m256i w = loadu256(blk + 2);
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// Q4_0 pair of blocks (2p, 2p+1): their 16 nibble bytes side by side in one register, low
// nibbles (values 0..15) and high nibbles (16..31) masked out, each multiplied with the
// matching x bytes: 16 int16 sums, 8 per block (each at most 4 * 15 * 127: no overflow).
LLMFS_AVX2 inline __m256i pair16_q4_0(const uint8_t* blk, __m256i lo, __m256i hi) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i t = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(blk + Q4_0_BYTES + 2),
                                          reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i l = _mm256_and_si256(t, mask), h = _mm256_and_si256(_mm256_srli_epi16(t, 4), mask);
    return _mm256_add_epi16(_mm256_maddubs_epi16(l, lo), _mm256_maddubs_epi16(h, hi));
}

LLMFS_AVX2 inline __m256i load256(const void* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

// One group g (8 blocks) of TWO rows a and b, which share each load of x: adds each row's
// share of its dot product (8 floats to be summed) to acc_a and acc_b.
template <Format F>
LLMFS_AVX2 inline void group2_avx2(const uint8_t* a, const uint8_t* b, const QuantizedVector& x, int64_t g,
                                   __m256& acc_a, __m256& acc_b) {
    constexpr int B = int(block_bytes<F>());
    __m256i sa, sb;  // lane k: the integer dot product of block k (Q4_0: of block Q4_ORDER[k])
    if constexpr (F == Format::Q8_0) {
        const int8_t* xq = x.q.data + g * GROUP * QK;
        // hadd of two blocks' sums: [b0 b0 b1 b1 | b0 b0 b1 b1]; of two such: [b0 b1 b2 b3 | b0 b1 b2 b3]
        __m256i ha[2], hb[2];  // blocks 0-3 and 4-7, reduced as soon as possible (few live registers)
        for (int half = 0; half < 2; ++half) {
            const int8_t* xh = xq + 4 * half * QK;
            const uint8_t *ah = a + 4 * half * B, *bh = b + 4 * half * B;
            __m256i x0 = load256(xh), x1 = load256(xh + QK);
            const __m256i a01 = _mm256_hadd_epi32(block8_q8_0(ah, x0), block8_q8_0(ah + B, x1));
            const __m256i b01 = _mm256_hadd_epi32(block8_q8_0(bh, x0), block8_q8_0(bh + B, x1));
            x0 = load256(xh + 2 * QK), x1 = load256(xh + 3 * QK);
            const __m256i a23 = _mm256_hadd_epi32(block8_q8_0(ah + 2 * B, x0), block8_q8_0(ah + 3 * B, x1));
            const __m256i b23 = _mm256_hadd_epi32(block8_q8_0(bh + 2 * B, x0), block8_q8_0(bh + 3 * B, x1));
            ha[half] = _mm256_hadd_epi32(a01, a23), hb[half] = _mm256_hadd_epi32(b01, b23);
        }
        // add the 128-bit halves: lane k = block k
        sa = _mm256_add_epi32(_mm256_permute2x128_si256(ha[0], ha[1], 0x20), _mm256_permute2x128_si256(ha[0], ha[1], 0x31));
        sb = _mm256_add_epi32(_mm256_permute2x128_si256(hb[0], hb[1], 0x20), _mm256_permute2x128_si256(hb[0], hb[1], 0x31));
    } else {
        const int8_t* lo = x.lo.data + g * GROUP * QK / 2;  // pair p at lo + p * 32
        const int8_t* hi = x.hi.data + g * GROUP * QK / 2;
        // per pair of blocks: 8 int16 per block; two hadds of int16 (sums stay below 2^15) leave
        // [b0 b2 b4 b6 | b1 b3 b5 b7] (Q4_ORDER), two per block; madd with 1s adds them in int32.
        __m256i ha[2], hb[2];  // pairs 0-1 and 2-3, reduced as soon as possible (few live registers)
        for (int half = 0; half < 2; ++half) {
            const int p = 2 * half;
            __m256i l = load256(lo + p * QK), h = load256(hi + p * QK);
            const __m256i a0 = pair16_q4_0(a + 2 * p * B, l, h), b0 = pair16_q4_0(b + 2 * p * B, l, h);
            l = load256(lo + (p + 1) * QK), h = load256(hi + (p + 1) * QK);
            ha[half] = _mm256_hadd_epi16(a0, pair16_q4_0(a + 2 * (p + 1) * B, l, h));
            hb[half] = _mm256_hadd_epi16(b0, pair16_q4_0(b + 2 * (p + 1) * B, l, h));
        }
        const __m256i ones = _mm256_set1_epi16(1), sum8 = load256(x.sum8.data + g * GROUP);
        sa = _mm256_madd_epi16(_mm256_hadd_epi16(ha[0], ha[1]), ones);
        sb = _mm256_madd_epi16(_mm256_hadd_epi16(hb[0], hb[1]), ones);
        // the nibbles were used unsigned (0..15): take off the "-8" of q - 8 as 8 * sum(x), exactly
        sa = _mm256_sub_epi32(sa, sum8), sb = _mm256_sub_epi32(sb, sum8);
    }
    // times the 8 scales d_w * d_x, into the accumulators
    const bool q8 = F == Format::Q8_0;
    const __m256 d = _mm256_load_ps((q8 ? x.d.data : x.d8.data) + g * GROUP);
    const __m256 da = q8 ? scales_q8_0(a) : scales_q4_0(a), db = q8 ? scales_q8_0(b) : scales_q4_0(b);
    acc_a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sa), _mm256_mul_ps(da, d), acc_a);
    acc_b = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sb), _mm256_mul_ps(db, d), acc_b);
}

// Four rows at once, w0..w3, as two pairs that share the loads of x: y0..y3 = their dot products.
template <Format F>
LLMFS_AVX2 inline void rows4_avx2(const uint8_t* w0, const uint8_t* w1, const uint8_t* w2, const uint8_t* w3,
                                  const QuantizedVector& x, float* y0, float* y1, float* y2, float* y3) {
    constexpr int64_t GB = GROUP * block_bytes<F>();  // bytes of one group
    const int64_t ng = x.nb / GROUP, tail = ng * GROUP, ahead = prefetch_ahead<F>();
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t g = 0; g < ng; ++g) {
        const int64_t o = g * GB, p = o + ahead;
        prefetch(w0 + p, GB), prefetch(w1 + p, GB), prefetch(w2 + p, GB), prefetch(w3 + p, GB);
        group2_avx2<F>(w0 + o, w1 + o, x, g, a0, a1);
        // (the empty asm keeps the compiler from interleaving the two pairs' work and running
        // out of registers; the out-of-order core overlaps them anyway)
        asm volatile("" ::: "memory");
        group2_avx2<F>(w2 + o, w3 + o, x, g, a2, a3);
    }
    // the last cols % 256 columns (fewer than 8 blocks) with the scalar code
    *y0 = hsum(a0) + dot_blocks_scalar<F>(w0, x, tail), *y1 = hsum(a1) + dot_blocks_scalar<F>(w1, x, tail);
    *y2 = hsum(a2) + dot_blocks_scalar<F>(w2, x, tail), *y3 = hsum(a3) + dot_blocks_scalar<F>(w3, x, tail);
}

LLMFS_AVX512_BEGIN
// ---- AVX-512 VNNI, Q4_0 only: 16 blocks (a group of 512 values) per step, 4 rows at a time ----
//
// vpdpbusd multiplies 64 unsigned bytes by 64 signed bytes and adds each 4 neighbouring products
// into one of 16 int32 lanes, all in one instruction (AVX2 needs maddubs + madd for 32 bytes).
// Q4_0's nibbles are already unsigned (0..15): one register holds 4 blocks' 64 bytes, and two
// dpbusd (low nibbles times x's first 16 values per block, high nibbles times the last 16)
// take all 128 weights: fewer instructions per byte than the AVX2 kernel, which on a core with
// fast memory is the limit.
//
// A quad = 4 blocks = 72 bytes. Its 4 x 16 nibble bytes are loaded 16 bytes at a time into the
// 4 128-bit lanes of one register. (One 64-byte load + a byte permute gathers them in fewer
// instructions, but such a load straddles two cache lines, and from DRAM the whole kernel ran
// much slower that way.)
LLMFS_AVX512 inline __m512i quad_nibbles_q4_0(const uint8_t* quad) {
    const auto load16 = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
    __m512i t = _mm512_castsi128_si512(load16(quad + 2));                 // lane 0: block 0's 16 bytes
    t = _mm512_inserti32x4(t, load16(quad + Q4_0_BYTES + 2), 1);          // lane 1: block 1
    t = _mm512_inserti32x4(t, load16(quad + 2 * Q4_0_BYTES + 2), 2);
    return _mm512_inserti32x4(t, load16(quad + 3 * Q4_0_BYTES + 2), 3);
}

// 4 quads' int32 partial sums (quad j: 4 lanes per block, block k in 128-bit lane k) -> one
// lane per block. Two rounds of "interleave and add" (AVX-512 has no horizontal add); lane L of
// the result holds block Q4_ORDER16(L) = 4 * (L % 4) + L / 4 of the group.
LLMFS_AVX512 inline __m512i fold_q4_0_avx512(const __m512i v[4]) {
    const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi64(v[0], v[1]), _mm512_unpackhi_epi64(v[0], v[1]));
    const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi64(v[2], v[3]), _mm512_unpackhi_epi64(v[2], v[3]));
    const __m512 af = _mm512_castsi512_ps(a), bf = _mm512_castsi512_ps(b);  // (shuffle_ps: 2 lanes from each)
    return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(af, bf, 0x88)), _mm512_castps_si512(_mm512_shuffle_ps(af, bf, 0xDD)));
}

// The 16 fp16 scales of a group as 16 floats in Q4_ORDER16: lane L wants quad L % 4, block
// L / 4 of it, i.e. word 9 * (L / 4) of the quad's first 64 bytes; 4 masked word permutes.
LLMFS_AVX512 inline __m512 scales_q4_0_avx512(const uint8_t* p) {
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // (words 16-31 unused)
                                         27, 27, 27, 27, 18, 18, 18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    __m512i s = _mm512_maskz_permutexvar_epi16(0x1111, idx, _mm512_loadu_si512(p));
    s = _mm512_mask_permutexvar_epi16(s, 0x2222, idx, _mm512_loadu_si512(p + 4 * Q4_0_BYTES));
    s = _mm512_mask_permutexvar_epi16(s, 0x4444, idx, _mm512_loadu_si512(p + 8 * Q4_0_BYTES));
    s = _mm512_mask_permutexvar_epi16(s, 0x8888, idx, _mm512_loadu_si512(p + 12 * Q4_0_BYTES));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(s));
}

// One group g (16 blocks) of TWO rows a and b, which share each load of x: adds each row's
// share of its dot product (16 floats to be summed) to acc_a and acc_b.
LLMFS_AVX512 inline void group2_q4_0_avx512(const uint8_t* a, const uint8_t* b, const QuantizedVector& x, int64_t g,
                                            __m512& acc_a, __m512& acc_b) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    __m512i va[4], vb[4];
    for (int j = 0; j < 4; ++j) {  // quad j: blocks 4j .. 4j+3 of the group
        const int64_t at = (g * GROUP16 + 4 * j) * (QK / 2);
        const __m512i xl = _mm512_load_si512(x.lo.data + at), xh = _mm512_load_si512(x.hi.data + at);
        const __m512i ta = quad_nibbles_q4_0(a + 4 * j * Q4_0_BYTES), tb = quad_nibbles_q4_0(b + 4 * j * Q4_0_BYTES);
        const __m512i zero = _mm512_setzero_si512();
        va[j] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, _mm512_and_si512(ta, mask), xl),
                                    _mm512_and_si512(_mm512_srli_epi16(ta, 4), mask), xh);
        vb[j] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, _mm512_and_si512(tb, mask), xl),
                                    _mm512_and_si512(_mm512_srli_epi16(tb, 4), mask), xh);
    }
    // the nibbles were used unsigned (0..15): take off the "-8" of q - 8 as 8 * sum(x), exactly
    const __m512i sum8 = _mm512_load_si512(x.sum16.data + g * GROUP16);
    const __m512i sa = _mm512_sub_epi32(fold_q4_0_avx512(va), sum8), sb = _mm512_sub_epi32(fold_q4_0_avx512(vb), sum8);
    // times the 16 scales d_w * d_x, into the accumulators
    const __m512 d = _mm512_load_ps(x.d16.data + g * GROUP16);
    acc_a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sa), _mm512_mul_ps(scales_q4_0_avx512(a), d), acc_a);
    acc_b = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sb), _mm512_mul_ps(scales_q4_0_avx512(b), d), acc_b);
}

LLMFS_AVX512 inline void rows4_avx512_q4_0(const uint8_t* w0, const uint8_t* w1, const uint8_t* w2, const uint8_t* w3,
                                           const QuantizedVector& x, float* y0, float* y1, float* y2, float* y3) {
    constexpr int64_t GB = GROUP16 * Q4_0_BYTES;  // bytes of one group
    const int64_t ng = x.nb / GROUP16, tail = ng * GROUP16, ahead = prefetch_ahead<Format::Q4_0>();
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t g = 0; g < ng; ++g) {
        const int64_t o = g * GB, p = o + ahead;
        prefetch(w0 + p, GB), prefetch(w1 + p, GB), prefetch(w2 + p, GB), prefetch(w3 + p, GB);
        group2_q4_0_avx512(w0 + o, w1 + o, x, g, a0, a1);
        asm volatile("" ::: "memory");  // (as in rows4_avx2)
        group2_q4_0_avx512(w2 + o, w3 + o, x, g, a2, a3);
    }
    // the last cols % 512 columns (fewer than 16 blocks) with the scalar code
    constexpr Format F = Format::Q4_0;
    *y0 = _mm512_reduce_add_ps(a0) + dot_blocks_scalar<F>(w0, x, tail), *y1 = _mm512_reduce_add_ps(a1) + dot_blocks_scalar<F>(w1, x, tail);
    *y2 = _mm512_reduce_add_ps(a2) + dot_blocks_scalar<F>(w2, x, tail), *y3 = _mm512_reduce_add_ps(a3) + dot_blocks_scalar<F>(w3, x, tail);
}
LLMFS_AVX512_END
#endif

// A kernel that computes 4 rows' dot products: rows4_avx2<F> or rows4_avx512_q4_0.
using Rows4 = void (*)(const uint8_t*, const uint8_t*, const uint8_t*, const uint8_t*, const QuantizedVector&, float*,
                       float*, float*, float*);

// y[i] for the rows i in [r0, r1) of q (row stride `stride` bytes): rows i, i+n, i+2n, i+3n
// together, 4 streams through memory in 4 different places.
inline void rows_far_apart(Rows4 rows4, const uint8_t* q, int64_t stride, int64_t r0, int64_t r1, const QuantizedVector& x, float* y) {
    const int64_t n = (r1 - r0) / 4;
    for (int64_t i = r0; i < r0 + n; ++i)
        rows4(q + i * stride, q + (i + n) * stride, q + (i + 2 * n) * stride, q + (i + 3 * n) * stride, x,
              y + i, y + i + n, y + i + 2 * n, y + i + 3 * n);
    const int64_t i = r0 + 4 * n, m = r1 - i;  // the last 0 to 3 rows, the last one repeated
    float scratch[4];
    if (m > 0)
        rows4(q + i * stride, q + (i + std::min<int64_t>(1, m - 1)) * stride, q + (i + std::min<int64_t>(2, m - 1)) * stride,
              q + (i + m - 1) * stride, x, y + i, m > 1 ? y + i + 1 : scratch + 1, m > 2 ? y + i + 2 : scratch + 2, scratch + 3);
}

// y (rows,) = dequantize(q) (rows, cols) · x (cols,), with x quantized to Q8_0 first. `path`:
// the scalar reference, AVX2, or AVX-512 VNNI (Q4_0 only; Q8_0 takes AVX2 there: an AVX-512
// version of it was no faster from DRAM, where Q8_0 already streams near the memory's speed).
template <Format F>
void matvec(int64_t rows, int64_t cols, const uint8_t* q, const float* x, float* y, int threads, Path path) {
    const QuantizedVector xq(x, cols, F, path);  // before any thread starts (it allocates)
    const int64_t stride = cols / QK * block_bytes<F>();
    Rows4 rows4 = nullptr;
#if LLMFS_X86
    if (path == Path::avx512 && F == Format::Q4_0) rows4 = rows4_avx512_q4_0;
    else if (path != Path::scalar) rows4 = rows4_avx2<F>;
#endif
    parallel_for(threads, rows, 1, [&](int64_t r0, int64_t r1, int) {
        if (rows4 != nullptr) return rows_far_apart(rows4, q, stride, r0, r1, xq, y);
        for (int64_t i = r0; i < r1; ++i) y[i] = dot_blocks_scalar<F>(q + i * stride, xq, 0);
    });
}

}  // namespace quant
}  // namespace llmfs
