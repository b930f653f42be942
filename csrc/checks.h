// Argument checks shared by the CPU and GPU implementations of the inference_engine ops: shapes, dtypes and
// layouts the kernels rely on. Device-specific checks stay with each backend.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace ie {

inline void check_rms_norm(const at::Tensor& out, const at::Tensor& input, const at::Tensor& weight) {
  TORCH_CHECK(input.is_contiguous() && out.is_contiguous(), "rms_norm: tensors must be contiguous");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == input.size(-1), "rms_norm: weight must be [hidden]");
  TORCH_CHECK(weight.scalar_type() == input.scalar_type() && out.scalar_type() == input.scalar_type(),
              "rms_norm: input, weight and out must share a dtype");
  TORCH_CHECK(out.sizes() == input.sizes(), "rms_norm: out must have the input's shape");
}

// Returns d, the width of the output.
inline int64_t check_act_and_mul(const at::Tensor& out, const at::Tensor& input) {
  TORCH_CHECK(input.is_contiguous() && out.is_contiguous(), "act_and_mul: tensors must be contiguous");
  TORCH_CHECK(input.size(-1) % 2 == 0, "act_and_mul: the last dimension must be even");
  TORCH_CHECK(out.scalar_type() == input.scalar_type(), "act_and_mul: out must have the input's dtype");
  const int64_t d = input.size(-1) / 2;
  TORCH_CHECK(out.numel() * 2 == input.numel() && out.size(-1) == d, "act_and_mul: out must be [..., d]");
  return d;
}

// query/key: the heads of a token back to back, [T, H * head_size] or [T, H, head_size], any row
// stride; outputs contiguous. The cache is float32 or the query's dtype.
inline void check_rotary_inputs(const at::Tensor& positions, const at::Tensor& query,
                                const at::Tensor& key, int64_t head_size, const at::Tensor& cache) {
  for (const at::Tensor* x : {&query, &key}) {
    TORCH_CHECK(x->stride(-1) == 1, "rotary_embedding: the last dimension must be contiguous");
    TORCH_CHECK(x->dim() == 2 || (x->dim() == 3 && x->stride(1) == head_size && x->size(2) == head_size),
                "rotary_embedding: query/key must be [T, H * head_size] or [T, H, head_size]");
    TORCH_CHECK(x->size(0) == positions.numel(), "rotary_embedding: one position per token");
  }
  TORCH_CHECK(positions.scalar_type() == at::kLong && positions.dim() == 1, "positions must be int64 [T]");
  TORCH_CHECK(cache.dim() == 2 && cache.is_contiguous() && cache.size(1) <= head_size &&
                  cache.size(1) % 2 == 0,
              "cos_sin_cache must be contiguous [max_position, rot_dim] with rot_dim <= head_size");
  TORCH_CHECK(key.scalar_type() == query.scalar_type(), "query and key must share a dtype");
  TORCH_CHECK(cache.scalar_type() == at::kFloat || cache.scalar_type() == query.scalar_type(),
              "cos_sin_cache must be float32 or the query's dtype");
}

inline void check_rotary(const at::Tensor& query_out, const at::Tensor& key_out,
                         const at::Tensor& positions, const at::Tensor& query,
                         const at::Tensor& key, int64_t head_size, const at::Tensor& cache) {
  check_rotary_inputs(positions, query, key, head_size, cache);
  TORCH_CHECK(query_out.is_contiguous() && key_out.is_contiguous(), "outputs must be contiguous");
  TORCH_CHECK(query_out.numel() == query.numel() && key_out.numel() == key.numel() &&
                  query_out.scalar_type() == query.scalar_type() &&
                  key_out.scalar_type() == key.scalar_type(),
              "rotary_embedding: outputs must match query and key");
}

// Whether `cache` holds `values`' type, or FP8 (e4m3) where the backend has such caches
// (`fp8_ok`: the GPU backend on CUDA).
inline bool cache_type_ok(const at::Tensor& cache, at::ScalarType values, bool fp8_ok) {
  return cache.scalar_type() == values || (fp8_ok && cache.scalar_type() == at::kFloat8_e4m3fn);
}

// src [T, num_kv_heads, head_size] (heads contiguous, any row stride) into a contiguous cache.
inline void check_cache_write(const at::Tensor& src, const at::Tensor& cache, const at::Tensor& slots,
                              bool fp8_ok = false) {
  TORCH_CHECK(src.dim() == 3 && src.stride(2) == 1 && src.stride(1) == src.size(2),
              "reshape_and_cache: key/value must be [T, num_kv_heads, head_size] with contiguous heads");
  TORCH_CHECK(cache.is_contiguous() && cache.dim() == 4, "reshape_and_cache: cache must be contiguous 4-D");
  TORCH_CHECK(cache_type_ok(cache, src.scalar_type(), fp8_ok),
              "reshape_and_cache: dtype must match the cache's", fp8_ok ? " (or the cache be FP8)" : "");
  TORCH_CHECK(cache.size(2) * cache.size(3) == src.size(1) * src.size(2),
              "reshape_and_cache: cache rows must be num_kv_heads * head_size");
  TORCH_CHECK(slots.scalar_type() == at::kLong && slots.is_contiguous() && slots.numel() == src.size(0),
              "slot_mapping must be contiguous int64 [T]");
}

// rotary_and_cache: query [T, H * head_size] (or 3-D), key and value [T, num_kv_heads, head_size].
inline void check_rotary_and_cache(const at::Tensor& query_out, const at::Tensor& key_cache,
                                   const at::Tensor& value_cache, const at::Tensor& positions,
                                   const at::Tensor& query, const at::Tensor& key,
                                   const at::Tensor& value, const at::Tensor& slot_mapping,
                                   int64_t head_size, const at::Tensor& cos_sin_cache,
                                   bool fp8_ok = false) {
  check_rotary_inputs(positions, query, key, head_size, cos_sin_cache);
  check_cache_write(key, key_cache, slot_mapping, fp8_ok);
  check_cache_write(value, value_cache, slot_mapping, fp8_ok);
  TORCH_CHECK(key_cache.scalar_type() == value_cache.scalar_type(), "caches must share a dtype");
  TORCH_CHECK(key.size(2) == head_size && value.sizes() == key.sizes(),
              "rotary_and_cache: key and value must be [T, num_kv_heads, head_size]");
  TORCH_CHECK(query_out.is_contiguous() && query_out.numel() == query.numel() &&
                  query_out.scalar_type() == query.scalar_type(),
              "rotary_and_cache: query_out must be contiguous, shaped and typed as query");
}

inline void check_block_mapping(const at::Tensor& block_mapping) {
  TORCH_CHECK(block_mapping.scalar_type() == at::kLong && block_mapping.dim() == 2 &&
                  block_mapping.size(1) == 2 && block_mapping.is_contiguous(),
              "block_mapping must be a contiguous int64 [N, 2] tensor of (src, dst)");
}

// Two caches whose blocks can be copied into each other byte for byte.
inline void check_same_blocks(const at::Tensor& src, const at::Tensor& dst) {
  TORCH_CHECK(src.is_contiguous() && dst.is_contiguous(), "caches must be contiguous");
  TORCH_CHECK(src.stride(0) == dst.stride(0) && src.scalar_type() == dst.scalar_type(),
              "the two caches must have the same block shape and dtype");
}

inline void check_paged_attention(const at::Tensor& out, const at::Tensor& query,
                                  const at::Tensor& key_cache, const at::Tensor& value_cache,
                                  const at::Tensor& block_tables, const at::Tensor& seq_lens,
                                  const std::optional<at::Tensor>& alibi_slopes, bool fp8_ok = false) {
  // query rows may sit at any stride (a view of the fused qkv projection's output).
  TORCH_CHECK(query.dim() == 3 && query.stride(2) == 1 && query.stride(1) == query.size(2) &&
                  out.is_contiguous() && out.sizes() == query.sizes(),
              "query [num_seqs, num_heads, head_size] must have each row's heads back to back "
              "and out must be contiguous and of its shape");
  TORCH_CHECK(key_cache.is_contiguous() && value_cache.is_contiguous() && key_cache.dim() == 4 &&
                  key_cache.sizes() == value_cache.sizes() && key_cache.size(3) == query.size(2),
              "caches must be contiguous [num_blocks, block_size, num_kv_heads, head_size]");
  TORCH_CHECK(cache_type_ok(key_cache, query.scalar_type(), fp8_ok) &&
                  value_cache.scalar_type() == key_cache.scalar_type() &&
                  out.scalar_type() == query.scalar_type(),
              "query, caches and out must share a dtype", fp8_ok ? " (or the caches be FP8)" : "");
  TORCH_CHECK(query.size(1) % key_cache.size(2) == 0, "num_heads must be a multiple of num_kv_heads");
  TORCH_CHECK(block_tables.scalar_type() == at::kInt && seq_lens.scalar_type() == at::kInt &&
                  block_tables.is_contiguous() && seq_lens.is_contiguous() &&
                  block_tables.size(0) == query.size(0) && seq_lens.numel() == query.size(0),
              "block_tables [num_seqs, max_blocks] and seq_lens [num_seqs] must be contiguous int32");
  if (alibi_slopes.has_value()) {
    TORCH_CHECK(alibi_slopes->scalar_type() == at::kFloat && alibi_slopes->numel() == query.size(1) &&
                    alibi_slopes->is_contiguous(), "alibi_slopes must be contiguous float32 [num_heads]");
  }
}

// v2's workspaces: exp_sums/max_logits [num_seqs, num_heads, P] float32, tmp_out [.., P, head_size].
inline void check_v2_workspace(const at::Tensor& exp_sums, const at::Tensor& max_logits,
                               const at::Tensor& tmp_out, const at::Tensor& query,
                               const at::Tensor& key_cache, const at::Tensor& block_tables,
                               int64_t partition_size) {
  TORCH_CHECK(partition_size > 0, "partition_size must be positive");
  TORCH_CHECK(exp_sums.scalar_type() == at::kFloat && max_logits.scalar_type() == at::kFloat &&
                  exp_sums.is_contiguous() && max_logits.is_contiguous() && tmp_out.is_contiguous() &&
                  tmp_out.scalar_type() == query.scalar_type() && tmp_out.dim() == 4 &&
                  exp_sums.sizes() == tmp_out.sizes().slice(0, 3) &&
                  max_logits.sizes() == exp_sums.sizes(),
              "exp_sums/max_logits must be float32 [num_seqs, num_heads, P], tmp_out [.., P, head_size]");
  TORCH_CHECK(tmp_out.size(2) * partition_size >= block_tables.size(1) * key_cache.size(1),
              "too few partitions for the block table");
}

// out = input weight^T (+ bias): input [rows, k] (rows at any stride), weight [n, k] contiguous,
// out [rows, n] contiguous, one dtype.
inline void check_skinny_matmul(const at::Tensor& out, const at::Tensor& input,
                                const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(input.dim() == 2 && input.stride(1) == 1, "skinny_matmul: input must be [rows, k]");
  TORCH_CHECK(weight.dim() == 2 && weight.is_contiguous() && weight.size(1) == input.size(1),
              "skinny_matmul: weight must be contiguous [n, k]");
  TORCH_CHECK(out.is_contiguous() && out.dim() == 2 && out.size(0) == input.size(0) &&
                  out.size(1) == weight.size(0),
              "skinny_matmul: out must be contiguous [rows, n]");
  TORCH_CHECK(weight.scalar_type() == input.scalar_type() && out.scalar_type() == input.scalar_type(),
              "skinny_matmul: input, weight and out must share a dtype");
  TORCH_CHECK(!bias.has_value() || (bias->dim() == 1 && bias->size(0) == weight.size(0) &&
                                    bias->is_contiguous() && bias->scalar_type() == input.scalar_type()),
              "skinny_matmul: bias must be [n] in the input's dtype");
}

inline void check_greedy_sample(const at::Tensor& tokens, const at::Tensor& logprobs,
                                const at::Tensor& logits) {
  TORCH_CHECK(logits.dim() == 2 && logits.stride(1) == 1, "greedy_sample: logits must be [rows, vocab]");
  TORCH_CHECK(logits.size(1) > 0 && logits.size(1) < INT32_MAX, "greedy_sample: vocab size out of range");
  const int64_t rows = logits.size(0);
  TORCH_CHECK(tokens.dim() == 1 && tokens.size(0) == rows && tokens.is_contiguous() &&
                  tokens.scalar_type() == at::kLong,
              "greedy_sample: tokens must be contiguous int64 [rows]");
  TORCH_CHECK(logprobs.dim() == 1 && logprobs.size(0) == rows && logprobs.is_contiguous() &&
                  logprobs.scalar_type() == at::kFloat,
              "greedy_sample: logprobs must be contiguous float32 [rows]");
  TORCH_CHECK(tokens.device() == logits.device() && logprobs.device() == logits.device(),
              "greedy_sample: tensors must share a device");
}

// Integer weights (W4A16, W8A16): qweight int32 [N, K / (32 / bits)], scales and zeros [N, G],
// all contiguous; a group is whole words.
inline void check_wna16(const at::Tensor& qweight, const at::Tensor& scales, const at::Tensor& zeros,
                        int64_t bits, int64_t group_size) {
  TORCH_CHECK(bits == 4 || bits == 8, "wna16: 4 or 8 bits");
  TORCH_CHECK(group_size > 0 && group_size % (32 / bits) == 0, "wna16: a group must be whole words");
  TORCH_CHECK(qweight.scalar_type() == at::kInt && qweight.dim() == 2 && qweight.is_contiguous(),
              "wna16: qweight must be contiguous int32 [N, K / (32 / bits)]");
  TORCH_CHECK(scales.dim() == 2 && scales.is_contiguous() && scales.size(0) == qweight.size(0),
              "wna16: scales must be contiguous [N, G]");
  TORCH_CHECK(zeros.sizes() == scales.sizes() && zeros.is_contiguous() &&
                  zeros.scalar_type() == scales.scalar_type(),
              "wna16: zeros must be contiguous, with the scales' shape and dtype");
  TORCH_CHECK(scales.size(1) * group_size == qweight.size(1) * (32 / bits),
              "wna16: the groups must cover the packed inputs");
}

// x [M, K] contiguous in the scales' dtype; out [M, N]; bias [N] or none.
inline void check_wna16_matmul(const at::Tensor& out, const at::Tensor& x, const at::Tensor& scales,
                               const std::optional<at::Tensor>& bias, int64_t n, int64_t k) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.size(1) == k, "wna16_matmul: x must be contiguous [M, K]");
  TORCH_CHECK(x.scalar_type() == scales.scalar_type() && out.scalar_type() == x.scalar_type(),
              "wna16_matmul: x, out and the scales must share a dtype");
  TORCH_CHECK(out.is_contiguous() && out.dim() == 2 && out.size(0) == x.size(0) && out.size(1) == n,
              "wna16_matmul: out must be contiguous [M, N]");
  TORCH_CHECK(!bias || (bias->is_contiguous() && bias->numel() == n && bias->scalar_type() == x.scalar_type()),
              "wna16_matmul: bias must be contiguous [N] in x's dtype");
}

inline void check_dequantize_wna16(const at::Tensor& out, const at::Tensor& scales, int64_t n, int64_t k) {
  TORCH_CHECK(out.is_contiguous() && out.dim() == 2 && out.size(0) == n && out.size(1) == k &&
                  out.scalar_type() == scales.scalar_type(),
              "dequantize_wna16: out must be contiguous [N, K] in the scales' dtype");
}

// Look-up weights (SqueezeLLM): qweight int32 [N, K / 8] of 4-bit indices, lut [N, 16].
inline void check_lut(const at::Tensor& qweight, const at::Tensor& lut) {
  TORCH_CHECK(qweight.scalar_type() == at::kInt && qweight.dim() == 2 && qweight.is_contiguous(),
              "lut: qweight must be contiguous int32 [N, K / 8]");
  TORCH_CHECK(lut.dim() == 2 && lut.size(0) == qweight.size(0) && lut.size(1) == 16 && lut.is_contiguous(),
              "lut: the table must be contiguous [N, 16]");
}

}  // namespace ie
