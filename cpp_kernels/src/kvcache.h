// kvcache.h: the keys and values of every past position, for every layer, in one block.
//
// Memory layout (floats, C order), allocated once and 64-byte aligned:
//
//   data[n_layers][2][max_seq_len][n_kv_heads][head_dim]      2 = keys, values
//
// so the filled part of one layer's keys, (length, n_kv_heads, head_dim), is contiguous: Python
// sees it as a numpy view without a copy, and attention reads it front to back in one stream.
// Appending a position is one memcpy per tensor, O(1) whatever the length: nothing is ever
// reallocated or moved (which is why max_seq_len is fixed up front).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "threads.h"

namespace llmfs {

class KVCache {
public:
    const int64_t n_layers, n_kv_heads, max_seq_len, head_dim;

    KVCache(int64_t n_layers_, int64_t n_kv_heads_, int64_t max_seq_len_, int64_t head_dim_)
        : n_layers(n_layers_), n_kv_heads(n_kv_heads_), max_seq_len(max_seq_len_), head_dim(head_dim_),
          buf_(checked_size(n_layers_, n_kv_heads_, max_seq_len_, head_dim_)), len_(size_t(n_layers_), 0) {}

    int64_t row() const { return n_kv_heads * head_dim; }  // floats per position
    int64_t nbytes() const { return n_layers * 2 * max_seq_len * row() * int64_t(sizeof(float)); }
    int64_t length(int64_t layer) const { return len_[size_t(layer)]; }
    float* keys(int64_t layer) { return buf_.data + (layer * 2 + 0) * max_seq_len * row(); }
    float* values(int64_t layer) { return buf_.data + (layer * 2 + 1) * max_seq_len * row(); }

    // Copy n_pos positions of k and v, each (n_pos, n_kv_heads, head_dim), after the filled part.
    // The caller has checked layer and shapes; overflow is checked here.
    void append(int64_t layer, const float* k, const float* v, int64_t n_pos) {
        int64_t& len = len_[size_t(layer)];
        if (n_pos > max_seq_len - len)
            throw std::invalid_argument("KVCache.append: layer " + std::to_string(layer) + " holds " +
                                        std::to_string(len) + " of " + std::to_string(max_seq_len) +
                                        " positions, no room for " + std::to_string(n_pos) + " more");
        const size_t n = size_t(n_pos * row());
        if (n > 0) {
            std::memcpy(keys(layer) + len * row(), k, n * sizeof(float));
            std::memcpy(values(layer) + len * row(), v, n * sizeof(float));
        }
        len += n_pos;
    }

    void reset() { std::fill(len_.begin(), len_.end(), 0); }

private:
    Aligned<float> buf_;
    std::vector<int64_t> len_;  // filled positions per layer

    static size_t checked_size(int64_t a, int64_t b, int64_t c, int64_t d) {
        if (a <= 0 || b <= 0 || c <= 0 || d <= 0)
            throw std::invalid_argument("KVCache: n_layers, n_kv_heads, max_seq_len and head_dim must be positive");
        const int64_t limit = int64_t(1) << 40;  // floats (4 TiB): far beyond any real cache
        int64_t n = 2;
        for (int64_t f : {a, b, c, d}) {
            if (n > limit / f) throw std::invalid_argument("KVCache: the cache would be larger than 4 TiB");
            n *= f;
        }
        return size_t(n);
    }
};

}  // namespace llmfs
