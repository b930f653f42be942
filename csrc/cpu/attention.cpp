// Decode attention over the paged KV cache on CPU. One task per (sequence, KV head[, partition])
// handles the whole query-head group of that KV head, so every cached row is converted to float
// once per group (grouped- and multi-query attention). v2 splits long contexts into partitions
// that run in parallel and are merged by their max logits and exp sums.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../checks.h"
#include "cpu_ops.h"
#include "vec.h"

namespace ie::cpu {
namespace {

template <typename T>
struct PagedArgs {
  const T* query;          // [num_seqs, num_heads, head_size], rows query_stride apart
  const T* key_cache;      // [num_blocks, block_size, num_kv_heads, head_size]
  const T* value_cache;    // [num_blocks, block_size, num_kv_heads, head_size]
  const int* block_tables;  // [num_seqs, max_blocks]
  const int* seq_lens;     // [num_seqs]
  const float* alibi;      // [num_heads] or nullptr
  int64_t num_heads, num_kv_heads, head_size, block_size, max_blocks;
  float scale;
  int64_t query_stride;
};

// Attends the `group` query heads of kv_head in sequence seq to tokens [start, end). Leaves each
// head's exp-weighted value sum, divided by its exp sum, in acc [group, head_size]; `maxes` and
// `sums` get each head's max logit and exp sum.
template <typename T>
void attend_range(const PagedArgs<T>& a, int64_t seq, int64_t kv_head, int64_t start, int64_t end,
                  float* acc, float* maxes, float* sums, std::vector<float>& scratch) {
  const int64_t D = a.head_size, group = a.num_heads / a.num_kv_heads, n = end - start;
  scratch.resize(group * D + D + group * n);
  float* q = scratch.data();
  float* row = q + group * D;
  float* logits = row + D;  // [group, n]
  const int64_t h0 = kv_head * group, seq_len = a.seq_lens[seq];
  for (int64_t g = 0; g < group; ++g) {
    load_row(q + g * D, a.query + seq * a.query_stride + (h0 + g) * D, D);
    for (int64_t i = 0; i < D; ++i) q[g * D + i] *= a.scale;
  }
  const int* table = a.block_tables + seq * a.max_blocks;
  const int64_t row_stride = a.num_kv_heads * D, block_stride = a.block_size * row_stride;
  auto cache_row = [&](const T* cache, int64_t t) {
    return cache + table[t / a.block_size] * block_stride + (t % a.block_size) * row_stride + kv_head * D;
  };
  for (int64_t t = start; t < end; ++t) {
    load_row(row, cache_row(a.key_cache, t), D);
    for (int64_t g = 0; g < group; ++g) {
      float logit = dot(q + g * D, row, D);
      if (a.alibi != nullptr) logit += a.alibi[h0 + g] * static_cast<float>(t - (seq_len - 1));
      logits[g * n + t - start] = logit;
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    float* l = logits + g * n;
    const float m = n > 0 ? *std::max_element(l, l + n) : -std::numeric_limits<float>::infinity();
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      l[i] = std::exp(l[i] - m);
      sum += l[i];
    }
    maxes[g] = m;
    sums[g] = sum;
  }
  std::fill(acc, acc + group * D, 0.f);
  for (int64_t t = start; t < end; ++t) {
    load_row(row, cache_row(a.value_cache, t), D);
    for (int64_t g = 0; g < group; ++g) axpy(acc + g * D, logits[g * n + t - start], row, D);
  }
  for (int64_t g = 0; g < group; ++g) {
    const float inv = sums[g] > 0.f ? 1.f / sums[g] : 0.f;
    for (int64_t i = 0; i < D; ++i) acc[g * D + i] *= inv;
  }
}

template <typename T>
PagedArgs<T> make_args(const at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
                       const at::Tensor& value_cache, const at::Tensor& block_tables,
                       const at::Tensor& seq_lens, double scale,
                       const std::optional<at::Tensor>& alibi_slopes) {
  check_paged_attention(out, query, key_cache, value_cache, block_tables, seq_lens, alibi_slopes);
  const float* alibi = alibi_slopes.has_value() ? alibi_slopes->data_ptr<float>() : nullptr;
  return {query.data_ptr<T>(), key_cache.data_ptr<T>(), value_cache.data_ptr<T>(),
          block_tables.data_ptr<int>(), seq_lens.data_ptr<int>(), alibi, query.size(1),
          key_cache.size(2), query.size(2), key_cache.size(1), block_tables.size(1),
          static_cast<float>(scale), query.stride(0)};
}

}  // namespace

void paged_attention_v1(at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
                        const at::Tensor& value_cache, const at::Tensor& block_tables,
                        const at::Tensor& seq_lens, double scale,
                        const std::optional<at::Tensor>& alibi_slopes) {
  IE_DISPATCH_FLOAT_TYPES(query.scalar_type(), "paged_attention_v1", [&] {
    const auto a = make_args<scalar_t>(out, query, key_cache, value_cache, block_tables, seq_lens,
                                       scale, alibi_slopes);
    const int64_t group = a.num_heads / a.num_kv_heads, D = a.head_size;
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, query.size(0) * a.num_kv_heads, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch, acc(group * D), stats(2 * group);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t seq = task / a.num_kv_heads, kv_head = task % a.num_kv_heads;
        attend_range(a, seq, kv_head, 0, a.seq_lens[seq], acc.data(), stats.data(),
                     stats.data() + group, scratch);
        store_row(o + (seq * a.num_heads + kv_head * group) * D, acc.data(), group * D);
      }
    });
  });
}

void paged_attention_v2(at::Tensor& out, at::Tensor& exp_sums, at::Tensor& max_logits,
                        at::Tensor& tmp_out, const at::Tensor& query, const at::Tensor& key_cache,
                        const at::Tensor& value_cache, const at::Tensor& block_tables,
                        const at::Tensor& seq_lens, double scale,
                        const std::optional<at::Tensor>& alibi_slopes, int64_t partition_size) {
  check_v2_workspace(exp_sums, max_logits, tmp_out, query, key_cache, block_tables, partition_size);
  const int64_t P = tmp_out.size(2);
  IE_DISPATCH_FLOAT_TYPES(query.scalar_type(), "paged_attention_v2", [&] {
    const auto a = make_args<scalar_t>(out, query, key_cache, value_cache, block_tables, seq_lens,
                                       scale, alibi_slopes);
    const int64_t group = a.num_heads / a.num_kv_heads, D = a.head_size, B = query.size(0);
    float* sums = exp_sums.data_ptr<float>();
    float* maxes = max_logits.data_ptr<float>();
    scalar_t* tmp = tmp_out.data_ptr<scalar_t>();
    at::parallel_for(0, B * a.num_kv_heads * P, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch, acc(group * D), stats(2 * group);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t part = task % P, seq = task / P / a.num_kv_heads;
        const int64_t kv_head = task / P % a.num_kv_heads;
        const int64_t start = part * partition_size;
        const int64_t stop = std::min<int64_t>(start + partition_size, a.seq_lens[seq]);
        if (start >= stop) continue;
        attend_range(a, seq, kv_head, start, stop, acc.data(), stats.data(), stats.data() + group, scratch);
        for (int64_t g = 0; g < group; ++g) {
          const int64_t idx = (seq * a.num_heads + kv_head * group + g) * P + part;
          maxes[idx] = stats[g];
          sums[idx] = stats[group + g];
          store_row(tmp + idx * D, acc.data() + g * D, D);
        }
      }
    });
    // Merge: each partition's output is already normalized by its own exp sum, so its weight is
    // sum_p * exp(max_p - global max).
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, B * a.num_heads, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> row(D), merged(D);
      for (int64_t sh = begin; sh < end; ++sh) {
        const int64_t parts = (a.seq_lens[sh / a.num_heads] + partition_size - 1) / partition_size;
        const float m = parts > 0 ? *std::max_element(maxes + sh * P, maxes + sh * P + parts) : 0.f;
        float total = 0.f;
        std::fill(merged.begin(), merged.end(), 0.f);
        for (int64_t p = 0; p < parts; ++p) {
          const float w = sums[sh * P + p] * std::exp(maxes[sh * P + p] - m);
          total += w;
          load_row(row.data(), tmp + (sh * P + p) * D, D);
          axpy(merged.data(), w, row.data(), D);
        }
        const float inv = total > 0.f ? 1.f / total : 0.f;
        for (int64_t i = 0; i < D; ++i) merged[i] *= inv;
        store_row(o + sh * D, merged.data(), D);
      }
    });
  });
}

}  // namespace ie::cpu
