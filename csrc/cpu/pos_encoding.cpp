// Rotary position embedding on CPU (NeoX: rotate the two halves of each head; GPT-J: rotate
// interleaved pairs). Reads query/key rows with any row stride (slices of a fused qkv output) and
// writes contiguous outputs.
#include <ATen/Parallel.h>

#include "../checks.h"
#include "cpu_ops.h"
#include "vec.h"

namespace ie::cpu {
namespace {

// Rotates `num_heads` heads of one token; cos/sin are the token's rot_dim / 2 cache entries.
template <typename T, typename C>
void rotate_heads(T* out, const T* in, const C* cos, const C* sin, int64_t num_heads,
                  int64_t head_size, int64_t rot_dim, bool is_neox) {
  const int64_t half = rot_dim / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    const T* x = in + h * head_size;
    T* y = out + h * head_size;
    // NeoX pairs element i with i + half; GPT-J pairs 2i with 2i + 1.
    const int64_t step = is_neox ? 1 : 2;
    const int64_t partner = is_neox ? half : 1;
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = i * step, b = a + partner;
      const float c = static_cast<float>(cos[i]), s = static_cast<float>(sin[i]);
      const float x1 = static_cast<float>(x[a]), x2 = static_cast<float>(x[b]);
      y[a] = static_cast<T>(x1 * c - x2 * s);
      y[b] = static_cast<T>(x2 * c + x1 * s);
    }
    for (int64_t i = rot_dim; i < head_size; ++i) y[i] = x[i];
  }
}

template <typename T, typename C>
void rotary_impl(at::Tensor& query_out, at::Tensor& key_out, const at::Tensor& positions,
                 const at::Tensor& query, const at::Tensor& key, int64_t head_size,
                 const at::Tensor& cache, bool is_neox) {
  const int64_t tokens = positions.numel();
  const int64_t rot_dim = cache.size(1);
  const int64_t q_heads = query.numel() / tokens / head_size;
  const int64_t k_heads = key.numel() / tokens / head_size;
  const int64_t* pos = positions.data_ptr<int64_t>();
  const C* cache_ptr = cache.data_ptr<C>();
  const T* q = query.data_ptr<T>();
  const T* k = key.data_ptr<T>();
  T* q_out = query_out.data_ptr<T>();
  T* k_out = key_out.data_ptr<T>();
  const int64_t q_stride = query.stride(0), k_stride = key.stride(0);
  at::parallel_for(0, tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const C* cos = cache_ptr + pos[t] * rot_dim;
      const C* sin = cos + rot_dim / 2;
      rotate_heads(q_out + t * q_heads * head_size, q + t * q_stride, cos, sin, q_heads, head_size,
                   rot_dim, is_neox);
      rotate_heads(k_out + t * k_heads * head_size, k + t * k_stride, cos, sin, k_heads, head_size,
                   rot_dim, is_neox);
    }
  });
}

}  // namespace

void rotary_embedding(at::Tensor& query_out, at::Tensor& key_out, const at::Tensor& positions,
                      const at::Tensor& query, const at::Tensor& key, int64_t head_size,
                      const at::Tensor& cos_sin_cache, bool is_neox) {
  check_rotary(query_out, key_out, positions, query, key, head_size, cos_sin_cache);
  const bool cache_is_float = cos_sin_cache.scalar_type() == at::kFloat;
  if (positions.numel() == 0) return;
  IE_DISPATCH_FLOAT_TYPES(query.scalar_type(), "rotary_embedding", [&] {
    if (cache_is_float) {
      rotary_impl<scalar_t, float>(query_out, key_out, positions, query, key, head_size,
                                   cos_sin_cache, is_neox);
    } else {
      rotary_impl<scalar_t, scalar_t>(query_out, key_out, positions, query, key, head_size,
                                      cos_sin_cache, is_neox);
    }
  });
}

void rotary_and_cache(at::Tensor& query_out, at::Tensor& key_cache, at::Tensor& value_cache,
                      const at::Tensor& positions, const at::Tensor& query, const at::Tensor& key,
                      const at::Tensor& value, const at::Tensor& slot_mapping, int64_t head_size,
                      const at::Tensor& cos_sin_cache, bool is_neox) {
  check_rotary_and_cache(query_out, key_cache, value_cache, positions, query, key, value,
                         slot_mapping, head_size, cos_sin_cache);
  // The CPU spends its time in the two loops, not in launches: nothing to gain by fusing them.
  at::Tensor key_out = at::empty(key.sizes(), key.options());
  rotary_embedding(query_out, key_out, positions, query, key, head_size, cos_sin_cache, is_neox);
  reshape_and_cache(key_out, value, key_cache, value_cache, slot_mapping);
}

}  // namespace ie::cpu
