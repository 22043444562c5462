// threads.h: the smallest useful parallel loop, and 64-byte aligned scratch buffers.
//
// parallel_for(n_threads, n, grain, fn) cuts [0, n) into at most n_threads contiguous chunks
// whose edges are multiples of `grain` and calls fn(begin, end, chunk) for each, chunk 0 on the
// calling thread. Threads are started per call (tens of microseconds), which is fine for kernels that
// run for a millisecond or more; a long-running engine would keep a pool instead.
// fn must not throw (an exception escaping a std::thread ends the process): kernels allocate
// their buffers before calling parallel_for.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

namespace llmfs {

template <class Fn>
void parallel_for(int n_threads, int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    const int64_t n_grains = (n + grain - 1) / grain;
    const int64_t t = std::max<int64_t>(1, std::min<int64_t>(n_threads, n_grains));
    if (t == 1) {
        fn(int64_t(0), n, 0);
        return;
    }
    auto chunk = [&](int64_t i) {  // [begin, end) of chunk i, on grain boundaries
        const int64_t b = std::min(n, (n_grains * i / t) * grain);
        const int64_t e = std::min(n, (n_grains * (i + 1) / t) * grain);
        fn(b, e, int(i));
    };
    std::vector<std::thread> pool;
    pool.reserve(size_t(t));
    int64_t started = 1;
    try {
        for (; started < t; ++started) pool.emplace_back(chunk, started);
    } catch (...) {
        // The OS refused another thread: the caller does the remaining chunks itself.
    }
    chunk(0);
    for (int64_t i = started; i < t; ++i) chunk(i);
    for (auto& th : pool) th.join();
}

// n values of type T (uninitialised) aligned to a cache line (64 bytes), so aligned AVX loads
// are allowed on it. Throws std::bad_alloc (Python: MemoryError) when memory runs out.
template <class T>
struct Aligned {
    T* data = nullptr;
    explicit Aligned(size_t n) {
        const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
        data = static_cast<T*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes));
        if (data == nullptr) throw std::bad_alloc();
    }
    ~Aligned() { std::free(data); }
    Aligned(const Aligned&) = delete;
    Aligned& operator=(const Aligned&) = delete;
};

}  // namespace llmfs
