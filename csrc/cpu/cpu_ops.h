// CPU implementations of the inference_engine ops (schemas in ../torch_bindings.cpp), registered
// in cpu_bindings.cpp.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <vector>

namespace ie::cpu {

void rms_norm(at::Tensor& out, const at::Tensor& input, const at::Tensor& weight, double epsilon);
void fused_add_rms_norm(at::Tensor& out, at::Tensor& residual_out, const at::Tensor& input,
                        const at::Tensor& residual, const at::Tensor& weight, double epsilon);

void rotary_embedding(at::Tensor& query_out, at::Tensor& key_out, const at::Tensor& positions,
                      const at::Tensor& query, const at::Tensor& key, int64_t head_size,
                      const at::Tensor& cos_sin_cache, bool is_neox);

// rotary_embedding, then reshape_and_cache of the rotated keys and the values.
void rotary_and_cache(at::Tensor& query_out, at::Tensor& key_cache, at::Tensor& value_cache,
                      const at::Tensor& positions, const at::Tensor& query, const at::Tensor& key,
                      const at::Tensor& value, const at::Tensor& slot_mapping, int64_t head_size,
                      const at::Tensor& cos_sin_cache, bool is_neox);

void silu_and_mul(at::Tensor& out, const at::Tensor& input);
void gelu_and_mul(at::Tensor& out, const at::Tensor& input);
void gelu_tanh_and_mul(at::Tensor& out, const at::Tensor& input);

void reshape_and_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor& key_cache,
                       at::Tensor& value_cache, const at::Tensor& slot_mapping);
void copy_blocks(const std::vector<at::Tensor>& key_caches,
                 const std::vector<at::Tensor>& value_caches, const at::Tensor& block_mapping);
void swap_blocks(const at::Tensor& src, at::Tensor& dst, const at::Tensor& block_mapping);

void paged_attention_v1(at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
                        const at::Tensor& value_cache, const at::Tensor& block_tables,
                        const at::Tensor& seq_lens, double scale,
                        const std::optional<at::Tensor>& alibi_slopes);
void paged_attention_v2(at::Tensor& out, at::Tensor& exp_sums, at::Tensor& max_logits,
                        at::Tensor& tmp_out, const at::Tensor& query, const at::Tensor& key_cache,
                        const at::Tensor& value_cache, const at::Tensor& block_tables,
                        const at::Tensor& seq_lens, double scale,
                        const std::optional<at::Tensor>& alibi_slopes, int64_t partition_size);

void greedy_sample(at::Tensor& tokens, at::Tensor& logprobs, const at::Tensor& logits);

// Integer weights (layout: inference_engine/ops/quantized_linear.py).
void wna16_matmul(at::Tensor& out, const at::Tensor& x, const at::Tensor& qweight,
                  const at::Tensor& scales, const at::Tensor& zeros, int64_t bits,
                  int64_t group_size, const std::optional<at::Tensor>& bias);
void dequantize_wna16(at::Tensor& out, const at::Tensor& qweight, const at::Tensor& scales,
                      const at::Tensor& zeros, int64_t bits, int64_t group_size);
void lut_matmul(at::Tensor& out, const at::Tensor& x, const at::Tensor& qweight,
                const at::Tensor& lut, const std::optional<at::Tensor>& bias);
void dequantize_lut(at::Tensor& out, const at::Tensor& qweight, const at::Tensor& lut);

}  // namespace ie::cpu
