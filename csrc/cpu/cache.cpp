// Paged KV-cache writes and block copies on CPU. Cache layout per layer and kind:
// [num_blocks, block_size, num_kv_heads, head_size]; slot = block * block_size + row.
#include <ATen/Parallel.h>

#include <cstring>

#include "../checks.h"
#include "cpu_ops.h"

namespace ie::cpu {
namespace {

// Copies token t's rows of `src` ([T, Hk, D], heads contiguous) into `cache` row slot[t].
void scatter_rows(const at::Tensor& src, at::Tensor& cache, const at::Tensor& slot_mapping) {
  check_cache_write(src, cache, slot_mapping);
  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  const int64_t row_bytes = cache.stride(1) * cache.element_size();
  const int64_t src_stride_bytes = src.stride(0) * src.element_size();
  const char* in = static_cast<const char*>(src.data_ptr());
  char* out = static_cast<char*>(cache.data_ptr());
  at::parallel_for(0, src.size(0), 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      if (slots[t] < 0) continue;
      std::memcpy(out + slots[t] * row_bytes, in + t * src_stride_bytes, row_bytes);
    }
  });
}

void check_mapping(const at::Tensor& block_mapping) {
  check_block_mapping(block_mapping);
  TORCH_CHECK(block_mapping.device().is_cpu(), "block_mapping must be on the CPU");
}

// Copies whole blocks (src -> dst pairs) from one contiguous cache into another.
void copy_block_pairs(const at::Tensor& src, const at::Tensor& dst, const at::Tensor& block_mapping) {
  check_same_blocks(src, dst);
  const int64_t* pairs = block_mapping.data_ptr<int64_t>();
  const int64_t block_bytes = src.stride(0) * src.element_size();
  const char* in = static_cast<const char*>(src.data_ptr());
  char* out = static_cast<char*>(dst.data_ptr());
  at::parallel_for(0, block_mapping.size(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      std::memcpy(out + pairs[2 * i + 1] * block_bytes, in + pairs[2 * i] * block_bytes, block_bytes);
    }
  });
}

}  // namespace

void reshape_and_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor& key_cache,
                       at::Tensor& value_cache, const at::Tensor& slot_mapping) {
  scatter_rows(key, key_cache, slot_mapping);
  scatter_rows(value, value_cache, slot_mapping);
}

void copy_blocks(const std::vector<at::Tensor>& key_caches,
                 const std::vector<at::Tensor>& value_caches, const at::Tensor& block_mapping) {
  check_mapping(block_mapping);
  TORCH_CHECK(key_caches.size() == value_caches.size(), "copy_blocks: one value cache per key cache");
  for (const auto* caches : {&key_caches, &value_caches}) {
    for (const at::Tensor& cache : *caches) copy_block_pairs(cache, cache, block_mapping);
  }
}

void swap_blocks(const at::Tensor& src, at::Tensor& dst, const at::Tensor& block_mapping) {
  check_mapping(block_mapping);
  copy_block_pairs(src, dst, block_mapping);
}

}  // namespace ie::cpu
