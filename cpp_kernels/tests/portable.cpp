// portable.cpp: every kernel header without Python, checked against naive loops.
//
// Built twice by tests/test_kernels_portable.py:
//   g++ -std=c++17 -O1 -Wall -Wextra -Werror -DLLMFS_NO_X86 -I../src portable.cpp   (what arm64 gets:
//       no x86 intrinsics are even seen by the compiler)
//   g++ -std=c++17 -O1 -Wall -Wextra -Werror -I../src portable.cpp                  (x86-64: every path
//       this CPU has, scalar, avx2, avx512)
// and run; it checks each kernel on every path up to cpu_path(), prints the automatic choice
// (auto_path, which honours LLMFS_FORCE_AVX2 / LLMFS_FORCE_SCALAR) and exits non-zero if any
// number was wrong.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "attention.h"
#include "cpu.h"
#include "gemm.h"
#include "gemv.h"
#include "kvcache.h"
#include "quant.h"
#include "roofline.h"

using namespace llmfs;

static int failures = 0;

static void check(bool ok, const char* what, double got, double want) {
    if (!ok) {
        std::printf("FAIL %s: got %.9g, want %.9g\n", what, got, want);
        ++failures;
    }
}

static void close(const char* what, double got, double want, double tol) {
    check(std::fabs(got - want) <= tol, what, got, want);
}

// Every kernel on `path` (a kernel without that version runs its widest one below it).
static void check_kernels(Path path) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto fill = [&](std::vector<float>& v) { for (float& f : v) f = normal(rng); };

    // matmul (M, N, K) = (37, 19, 300), threads 1 and 3
    {
        const int64_t M = 37, N = 19, K = 300;
        std::vector<float> A(M * K), B(K * N), C(M * N), C3(M * N);
        fill(A), fill(B);
        gemm::matmul(M, N, K, A.data(), B.data(), C.data(), 1, path);
        gemm::matmul(M, N, K, A.data(), B.data(), C3.data(), 3, path);
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < K; ++k) ref += double(A[i * K + k]) * B[k * N + j], mag += std::fabs(double(A[i * K + k]) * B[k * N + j]);
                close("matmul", C[i * N + j], ref, 1e-6 * mag + 1e-6);
                check(C3[i * N + j] == C[i * N + j], "matmul threads", C3[i * N + j], C[i * N + j]);
            }
    }
    // matvec (33, 257)
    {
        const int64_t R = 33, Cn = 257;
        std::vector<float> W(R * Cn), x(Cn), y(R);
        fill(W), fill(x);
        gemv::matvec(R, Cn, W.data(), x.data(), y.data(), 2, path);
        for (int64_t i = 0; i < R; ++i) {
            double ref = 0, mag = 0;
            for (int64_t j = 0; j < Cn; ++j) ref += double(W[i * Cn + j]) * x[j], mag += std::fabs(double(W[i * Cn + j]) * x[j]);
            close("matvec", y[i], ref, 1e-6 * mag + 1e-6);
        }
    }
    // fp16 round trip of every half value
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = quant::fp16_to_fp32(uint16_t(h));
        if (std::isnan(f)) continue;
        check(quant::fp32_to_fp16(f) == h, "fp16 round trip", h, quant::fp32_to_fp16(f));
    }
    // Q8_0 / Q4_0: quantize, dequantize, matvec against the dequantized product
    {
        const int64_t R = 9, Cn = 576;  // 18 blocks: two groups of 8 (AVX2) or one of 16 (AVX-512) + a tail of 2
        std::vector<float> W(R * Cn), x(Cn), y(R), Wd(R * Cn);
        fill(W), fill(x);
        std::vector<float> xd(Cn);
        {
            std::vector<uint8_t> qx(Cn / 32 * quant::Q8_0_BYTES);
            quant::quantize_q8_0(1, Cn, x.data(), qx.data(), Path::scalar);
            quant::dequantize_q8_0(1, Cn, qx.data(), xd.data());
        }
        for (int fmt = 0; fmt < 2; ++fmt) {
            const int64_t bytes = fmt == 0 ? quant::Q8_0_BYTES : quant::Q4_0_BYTES;
            std::vector<uint8_t> q(R * Cn / 32 * bytes);
            if (fmt == 0) {
                quant::quantize_q8_0(R, Cn, W.data(), q.data(), path);
                std::vector<uint8_t> q_ref(q.size());
                quant::quantize_q8_0(R, Cn, W.data(), q_ref.data(), Path::scalar);
                check(q == q_ref, "q8_0 fast quantizer = reference bytes", 0, 0);
                quant::dequantize_q8_0(R, Cn, q.data(), Wd.data());
                quant::matvec<quant::Format::Q8_0>(R, Cn, q.data(), x.data(), y.data(), 2, path);
            } else {
                quant::quantize_q4_0(R, Cn, W.data(), q.data());
                quant::dequantize_q4_0(R, Cn, q.data(), Wd.data());
                quant::matvec<quant::Format::Q4_0>(R, Cn, q.data(), x.data(), y.data(), 2, path);
            }
            for (int64_t i = 0; i < R * Cn; ++i) {
                const float amax = 4.5f;  // |w| of a normal sample stays below this here
                close(fmt == 0 ? "q8_0 round trip" : "q4_0 round trip", Wd[i], W[i], amax / (fmt == 0 ? 127 : 8) * 1.01);
            }
            for (int64_t i = 0; i < R; ++i) {
                double ref = 0, mag = 0;
                for (int64_t j = 0; j < Cn; ++j) ref += double(Wd[i * Cn + j]) * xd[j], mag += std::fabs(double(Wd[i * Cn + j]) * xd[j]);
                close(fmt == 0 ? "matvec_q8_0" : "matvec_q4_0", y[i], ref, 1e-5 * mag + 1e-6);
            }
        }
    }
    // KV cache + attention (GQA: 6 query heads on 2 kv heads)
    {
        const int64_t H = 6, Hkv = 2, D = 20, T = 45;
        KVCache cache(2, Hkv, 64, D);
        std::vector<float> k(T * Hkv * D), v(T * Hkv * D), q(H * D), out(H * D), scores(H * T);
        fill(k), fill(v), fill(q);
        cache.append(1, k.data(), v.data(), T);
        check(cache.length(1) == T && cache.length(0) == 0, "kv length", double(cache.length(1)), double(T));
        const attention::Shape s{T, H, Hkv, D};
        attention::decode(s, q.data(), cache.keys(1), cache.values(1), out.data(), scores.data(), path);
        for (int64_t h = 0; h < H; ++h) {
            const int64_t kv = h / (H / Hkv);
            std::vector<double> p(T);
            double mx = -1e300, sum = 0;
            for (int64_t t = 0; t < T; ++t) {
                double dot = 0;
                for (int64_t d = 0; d < D; ++d) dot += double(q[h * D + d]) * k[(t * Hkv + kv) * D + d];
                p[t] = dot / std::sqrt(double(D));
                mx = std::max(mx, p[t]);
            }
            for (int64_t t = 0; t < T; ++t) sum += (p[t] = std::exp(p[t] - mx));
            for (int64_t d = 0; d < D; ++d) {
                double o = 0;
                for (int64_t t = 0; t < T; ++t) o += p[t] / sum * v[(t * Hkv + kv) * D + d];
                close("attention", out[h * D + d], o, 1e-5);
            }
        }
    }
}

int main() {
    std::printf("x86 code compiled: %d, widest path of this CPU: %s, automatic path (matmul): %s\n", LLMFS_X86,
                path_name(cpu_path()), path_name(auto_path(gemm::WIDEST)));
    for (Path path : {Path::scalar, Path::avx2, Path::avx512}) {
        if (path > cpu_path()) break;
        const int before = failures;
        check_kernels(path);
        std::printf("%s path: %s\n", path_name(path), failures == before ? "ok" : "FAILED");
    }
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
