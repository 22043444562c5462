// attention.h: one decode step of attention, one new query against the KV cache.
//
//   q:   (n_heads, head_dim)              the new token's queries
//   K,V: (T, n_kv_heads, head_dim)        the cached keys and values (kvcache.h layout)
//   out: (n_heads, head_dim)              out[h] = softmax(q[h] · K[:, kv]ᵀ / sqrt(head_dim)) · V[:, kv]
//
// Grouped-query attention: query head h reads kv head h / (n_heads / n_kv_heads), so several
// query heads share one cached head. The new query sits at the last position, so the causal
// mask lets it see every cached position (the caller appends its own k, v first).
//
// Speed: the work is ~4 flops per cached float, so like GEMV this is bound by the bytes of K
// and V it reads. Both passes walk the cache position by position (all heads of a position
// are one contiguous row, read front to back); the scores (n_heads, T) and the output stay in
// cache. The softmax uses the usual max subtraction for stability and, on
// AVX2, an 8-wide exp (simd.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu.h"
#include "simd.h"

namespace llmfs {
namespace attention {

constexpr Path WIDEST = Path::avx2;  // attention_decode's paths: scalar, avx2

struct Shape {
    int64_t T, n_heads, n_kv_heads, head_dim;
    int64_t group() const { return n_heads / n_kv_heads; }
    int64_t row() const { return n_kv_heads * head_dim; }  // floats per cached position
};

// Scalar reference. scores: scratch of n_heads * T floats.
inline void decode_scalar(const Shape& s, const float* q, const float* K, const float* V, float* out, float* scores) {
    const float scale = 1.0f / std::sqrt(float(s.head_dim));
    for (int64_t h = 0; h < s.n_heads; ++h) {
        const int64_t kv = h / s.group();
        const float* qh = q + h * s.head_dim;
        float* sc = scores + h * s.T;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t t = 0; t < s.T; ++t) {
            const float* k = K + t * s.row() + kv * s.head_dim;
            float dot = 0.0f;
            for (int64_t d = 0; d < s.head_dim; ++d) dot += qh[d] * k[d];
            sc[t] = dot * scale;
            mx = std::max(mx, sc[t]);
        }
        float sum = 0.0f;
        for (int64_t t = 0; t < s.T; ++t) sum += (sc[t] = std::exp(sc[t] - mx));
        float* o = out + h * s.head_dim;
        std::fill(o, o + s.head_dim, 0.0f);
        for (int64_t t = 0; t < s.T; ++t) {
            const float* v = V + t * s.row() + kv * s.head_dim;
            for (int64_t d = 0; d < s.head_dim; ++d) o[d] += sc[t] * v[d];
        }
        for (int64_t d = 0; d < s.head_dim; ++d) o[d] /= sum;
    }
}

#if LLMFS_X86
// scores[h, t] = q[h] · K[t, kv(h)] * scale for every head h at one cached position t.
// (Nested loops over kv heads and their query heads: no division h / group per dot product.)
LLMFS_AVX2 inline void scores_at(const Shape& s, const float* q, const float* kt, float scale, int64_t t, float* scores) {
    const int64_t d8 = s.head_dim & ~int64_t(7), group = s.group();
    for (int64_t kv = 0, h = 0; kv < s.n_kv_heads; ++kv) {
        const float* k = kt + kv * s.head_dim;
        for (int64_t g = 0; g < group; ++g, ++h) {
            const float* qh = q + h * s.head_dim;
            __m256 acc = _mm256_setzero_ps();
            for (int64_t d = 0; d < d8; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + d), _mm256_loadu_ps(k + d), acc);
            float dot = hsum(acc);
            for (int64_t d = d8; d < s.head_dim; ++d) dot += qh[d] * k[d];
            scores[h * s.T + t] = dot * scale;
        }
    }
}

// out[h] += p[h, t] * V[t, kv(h)] for every head h at one cached position t.
LLMFS_AVX2 inline void accumulate_at(const Shape& s, const float* vt, const float* p, int64_t t, float* out) {
    const int64_t d8 = s.head_dim & ~int64_t(7), group = s.group();
    for (int64_t kv = 0, h = 0; kv < s.n_kv_heads; ++kv) {
        const float* v = vt + kv * s.head_dim;
        for (int64_t g = 0; g < group; ++g, ++h) {
            float* o = out + h * s.head_dim;
            const float w = p[h * s.T + t];
            const __m256 vw = _mm256_set1_ps(w);
            for (int64_t d = 0; d < d8; d += 8)
                _mm256_storeu_ps(o + d, _mm256_fmadd_ps(vw, _mm256_loadu_ps(v + d), _mm256_loadu_ps(o + d)));
            for (int64_t d = d8; d < s.head_dim; ++d) o[d] += w * v[d];
        }
    }
}

LLMFS_AVX2 inline void decode_avx2(const Shape& s, const float* q, const float* K, const float* V, float* out, float* scores) {
    const float scale = 1.0f / std::sqrt(float(s.head_dim));
    // 1. scores[h, t] = q[h] · K[t, kv(h)] * scale, reading K once, front to back.
    for (int64_t t = 0; t < s.T; ++t) scores_at(s, q, K + t * s.row(), scale, t, scores);
    // 2. softmax numerators in place, 8 positions at a time; out[h] starts at 0.
    for (int64_t h = 0; h < s.n_heads; ++h) {
        float* sc = scores + h * s.T;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t t = 0; t < s.T; ++t) mx = std::max(mx, sc[t]);
        const __m256 vmx = _mm256_set1_ps(mx);
        int64_t t = 0;
        for (; t + 8 <= s.T; t += 8) _mm256_storeu_ps(sc + t, exp8(_mm256_sub_ps(_mm256_loadu_ps(sc + t), vmx)));
        for (; t < s.T; ++t) sc[t] = std::exp(sc[t] - mx);
        std::fill(out + h * s.head_dim, out + (h + 1) * s.head_dim, 0.0f);
    }
    // 3. out[h] += p[h, t] * V[t, kv(h)], reading V once, front to back.
    for (int64_t t = 0; t < s.T; ++t) accumulate_at(s, V + t * s.row(), scores, t, out);
    // 4. divide by the softmax denominators.
    for (int64_t h = 0; h < s.n_heads; ++h) {
        const float* sc = scores + h * s.T;
        float sum = 0.0f;
        for (int64_t t = 0; t < s.T; ++t) sum += sc[t];
        float* o = out + h * s.head_dim;
        for (int64_t d = 0; d < s.head_dim; ++d) o[d] /= sum;
    }
}
#endif

// `path`: scalar, or avx2 for anything wider (cpu.h).
inline void decode(const Shape& s, const float* q, const float* K, const float* V, float* out, float* scores, Path path) {
#if LLMFS_X86
    if (path != Path::scalar) return decode_avx2(s, q, K, V, out, scores);
#else
    (void)path;
#endif
    decode_scalar(s, q, K, V, out, scores);
}

}  // namespace attention
}  // namespace llmfs
