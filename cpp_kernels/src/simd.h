// simd.h: small AVX2 helpers shared by the kernels (x86-64 only; callers check use_avx2()).
#pragma once

#include "cpu.h"

#if LLMFS_X86
namespace llmfs {

// Sum of the 8 lanes of v.
LLMFS_AVX2 inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // 4 lanes
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                         // 2 lanes
    s = _mm_add_ss(s, _mm_movehdup_ps(s));                                          // 1 lane
    return _mm_cvtss_f32(s);
}

// exp(x) for 8 floats, the Cephes polynomial (as in avx_mathfun / ggml): relative error
// about 2e-7 on [-87, 88]. Inputs are clamped to that range (exp(-87) = 1.6e-38 stands in for
// anything smaller), so 2^n below stays a normal float.
LLMFS_AVX2 inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    // exp(x) = 2^n * exp(r) with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2].
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2 in two pieces
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^n: put n + 127 into the exponent bits (n is in [-126, 127] after the clamps).
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

}  // namespace llmfs
#endif
