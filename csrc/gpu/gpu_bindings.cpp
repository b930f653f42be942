// Registers the GPU (CUDA or, hipified, ROCm) implementations of the inference_engine ops: argument checks,
// device guard and current stream around the raw-pointer launchers of launchers.h.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "../checks.h"
#include "launchers.h"

namespace ie::gpu {
namespace {

DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::kFloat32;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "unsupported dtype ", t.scalar_type());
  }
}

// Whether a KV cache holds FP8 (e4m3) values rather than its writer's or reader's type.
bool is_fp8(const at::Tensor& cache) { return cache.scalar_type() == at::kFloat8_e4m3fn; }

void check_launch(const char* error) {
  TORCH_CHECK(error == nullptr, error);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

cudaStream_t stream() { return at::cuda::getCurrentCUDAStream(); }

void rms_norm(at::Tensor& out, const at::Tensor& input, const at::Tensor& weight, double epsilon) {
  check_rms_norm(out, input, weight);
  const at::cuda::OptionalCUDAGuard guard(input.device());
  const int64_t hidden = input.size(-1);
  check_launch(launch_rms_norm(out.data_ptr(), nullptr, input.data_ptr(), nullptr, weight.data_ptr(),
                               input.numel() / hidden, hidden, epsilon, dtype_of(input), stream()));
}

void fused_add_rms_norm(at::Tensor& out, at::Tensor& residual_out, const at::Tensor& input,
                        const at::Tensor& residual, const at::Tensor& weight, double epsilon) {
  check_rms_norm(out, input, weight);
  check_rms_norm(residual_out, residual, weight);
  TORCH_CHECK(residual.sizes() == input.sizes(), "fused_add_rms_norm: residual must match input");
  const at::cuda::OptionalCUDAGuard guard(input.device());
  const int64_t hidden = input.size(-1);
  check_launch(launch_rms_norm(out.data_ptr(), residual_out.data_ptr(), input.data_ptr(),
                               residual.data_ptr(), weight.data_ptr(), input.numel() / hidden, hidden,
                               epsilon, dtype_of(input), stream()));
}

RotaryArgs rotary_args(at::Tensor& query_out, const at::Tensor& positions, const at::Tensor& query,
                       const at::Tensor& key, int64_t head_size, const at::Tensor& cos_sin_cache,
                       bool is_neox) {
  RotaryArgs a;
  a.tokens = positions.numel();
  a.query_out = query_out.data_ptr();
  a.positions = positions.data_ptr<int64_t>();
  a.query = query.data_ptr();
  a.key = key.data_ptr();
  a.cos_sin_cache = cos_sin_cache.data_ptr();
  a.cache_is_float = cos_sin_cache.scalar_type() == at::kFloat;
  a.num_heads = a.tokens ? query.numel() / a.tokens / head_size : 0;
  a.num_kv_heads = a.tokens ? key.numel() / a.tokens / head_size : 0;
  a.head_size = head_size;
  a.rot_dim = cos_sin_cache.size(1);
  a.q_stride = query.stride(0);
  a.k_stride = key.stride(0);
  a.is_neox = is_neox;
  return a;
}

void rotary_embedding(at::Tensor& query_out, at::Tensor& key_out, const at::Tensor& positions,
                      const at::Tensor& query, const at::Tensor& key, int64_t head_size,
                      const at::Tensor& cos_sin_cache, bool is_neox) {
  check_rotary(query_out, key_out, positions, query, key, head_size, cos_sin_cache);
  const at::cuda::OptionalCUDAGuard guard(query.device());
  RotaryArgs a = rotary_args(query_out, positions, query, key, head_size, cos_sin_cache, is_neox);
  a.key_out = key_out.data_ptr();
  check_launch(launch_rotary(a, dtype_of(query), stream()));
}

void rotary_and_cache(at::Tensor& query_out, at::Tensor& key_cache, at::Tensor& value_cache,
                      const at::Tensor& positions, const at::Tensor& query, const at::Tensor& key,
                      const at::Tensor& value, const at::Tensor& slot_mapping, int64_t head_size,
                      const at::Tensor& cos_sin_cache, bool is_neox) {
  check_rotary_and_cache(query_out, key_cache, value_cache, positions, query, key, value,
                         slot_mapping, head_size, cos_sin_cache, fp8_cache_supported());
  const at::cuda::OptionalCUDAGuard guard(query.device());
  RotaryArgs a = rotary_args(query_out, positions, query, key, head_size, cos_sin_cache, is_neox);
  a.value = value.data_ptr();
  a.v_stride = value.stride(0);
  a.key_cache = key_cache.data_ptr();
  a.value_cache = value_cache.data_ptr();
  a.fp8_cache = is_fp8(key_cache);
  a.slot_mapping = slot_mapping.data_ptr<int64_t>();
  check_launch(launch_rotary(a, dtype_of(query), stream()));
}

template <Activation act>
void act_and_mul(at::Tensor& out, const at::Tensor& input) {
  const int64_t d = check_act_and_mul(out, input);
  const at::cuda::OptionalCUDAGuard guard(input.device());
  check_launch(launch_act_and_mul(act, out.data_ptr(), input.data_ptr(), out.numel() / d, d,
                                  dtype_of(input), stream()));
}

void reshape_and_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor& key_cache,
                       at::Tensor& value_cache, const at::Tensor& slot_mapping) {
  check_cache_write(key, key_cache, slot_mapping, fp8_cache_supported());
  check_cache_write(value, value_cache, slot_mapping, fp8_cache_supported());
  TORCH_CHECK(key_cache.scalar_type() == value_cache.scalar_type(), "caches must share a dtype");
  const at::cuda::OptionalCUDAGuard guard(key.device());
  check_launch(launch_reshape_and_cache(
      key.data_ptr(), value.data_ptr(), key_cache.data_ptr(), value_cache.data_ptr(),
      slot_mapping.data_ptr<int64_t>(), key.size(0), key.size(1) * key.size(2), key.stride(0),
      value.stride(0), dtype_of(key), is_fp8(key_cache), stream()));
}

void copy_blocks(const std::vector<at::Tensor>& key_caches,
                 const std::vector<at::Tensor>& value_caches, const at::Tensor& block_mapping) {
  check_block_mapping(block_mapping);
  TORCH_CHECK(key_caches.size() == value_caches.size(), "copy_blocks: one value cache per key cache");
  if (key_caches.empty() || block_mapping.size(0) == 0) return;
  const at::Device device = key_caches[0].device();
  const at::cuda::OptionalCUDAGuard guard(device);
  std::vector<int64_t> ptrs;
  for (const auto* caches : {&key_caches, &value_caches}) {
    for (const at::Tensor& cache : *caches) {
      check_same_blocks(cache, key_caches[0]);
      TORCH_CHECK(cache.device() == device, "copy_blocks: all caches must be on one device");
      ptrs.push_back(reinterpret_cast<int64_t>(cache.data_ptr()));
    }
  }
  // The kernel reads the cache addresses and the mapping from device memory.
  const at::Tensor device_ptrs = at::tensor(ptrs, at::kLong).to(device, /*non_blocking=*/true);
  const at::Tensor mapping = block_mapping.to(device, /*non_blocking=*/true);
  check_launch(launch_copy_blocks(device_ptrs.data_ptr<int64_t>(), mapping.data_ptr<int64_t>(),
                                  static_cast<int>(ptrs.size()), mapping.size(0),
                                  key_caches[0].stride(0) * key_caches[0].element_size(), stream()));
}

// Between GPU and host (either way) or within a GPU: one async copy per block on the current stream.
void swap_blocks(const at::Tensor& src, at::Tensor& dst, const at::Tensor& block_mapping) {
  check_block_mapping(block_mapping);
  check_same_blocks(src, dst);
  TORCH_CHECK(block_mapping.device().is_cpu(), "swap_blocks: block_mapping must be on the CPU");
  const at::Device device = src.is_cuda() ? src.device() : dst.device();
  const at::cuda::OptionalCUDAGuard guard(device);
  const int64_t block_bytes = src.stride(0) * src.element_size();
  const char* in = static_cast<const char*>(src.data_ptr());
  char* out = static_cast<char*>(dst.data_ptr());
  const int64_t* pairs = block_mapping.data_ptr<int64_t>();
  for (int64_t i = 0; i < block_mapping.size(0); ++i) {
    C10_CUDA_CHECK(cudaMemcpyAsync(out + pairs[2 * i + 1] * block_bytes, in + pairs[2 * i] * block_bytes,
                                   block_bytes, cudaMemcpyDefault, stream()));
  }
}

// The kernel loads the query in 16-byte vectors: a view whose rows start off that alignment (an
// odd offset or row stride) is copied first. Here rather than in Python, where data_ptr() is
// unknown while torch.compile traces.
at::Tensor vector_aligned(const at::Tensor& query) {
  const bool aligned = reinterpret_cast<uintptr_t>(query.data_ptr()) % 16 == 0 &&
                       (query.stride(0) * query.element_size()) % 16 == 0;
  return aligned ? query : query.clone(at::MemoryFormat::Contiguous);
}

PagedAttentionArgs attention_args(at::Tensor& out, const at::Tensor& query,
                                  const at::Tensor& key_cache, const at::Tensor& value_cache,
                                  const at::Tensor& block_tables, const at::Tensor& seq_lens,
                                  double scale, const std::optional<at::Tensor>& alibi_slopes) {
  check_paged_attention(out, query, key_cache, value_cache, block_tables, seq_lens, alibi_slopes,
                        fp8_cache_supported());
  PagedAttentionArgs a{};
  a.out = out.data_ptr();
  a.query = query.data_ptr();
  a.key_cache = key_cache.data_ptr();
  a.value_cache = value_cache.data_ptr();
  a.fp8_cache = is_fp8(key_cache);
  a.block_tables = block_tables.data_ptr<int>();
  a.seq_lens = seq_lens.data_ptr<int>();
  a.alibi_slopes = alibi_slopes.has_value() ? alibi_slopes->data_ptr<float>() : nullptr;
  a.scale = static_cast<float>(scale);
  a.num_seqs = query.size(0);
  a.num_heads = query.size(1);
  a.head_size = query.size(2);
  a.block_size = key_cache.size(1);
  a.num_kv_heads = key_cache.size(2);
  a.max_blocks = block_tables.size(1);
  a.query_stride = query.stride(0);
  return a;
}

void paged_attention_v1(at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
                        const at::Tensor& value_cache, const at::Tensor& block_tables,
                        const at::Tensor& seq_lens, double scale,
                        const std::optional<at::Tensor>& alibi_slopes) {
  const at::cuda::OptionalCUDAGuard guard(query.device());
  const at::Tensor q = vector_aligned(query);
  const auto args = attention_args(out, q, key_cache, value_cache, block_tables, seq_lens, scale,
                                   alibi_slopes);
  check_launch(launch_paged_attention(args, dtype_of(query), stream()));
}

void paged_attention_v2(at::Tensor& out, at::Tensor& exp_sums, at::Tensor& max_logits,
                        at::Tensor& tmp_out, const at::Tensor& query, const at::Tensor& key_cache,
                        const at::Tensor& value_cache, const at::Tensor& block_tables,
                        const at::Tensor& seq_lens, double scale,
                        const std::optional<at::Tensor>& alibi_slopes, int64_t partition_size) {
  check_v2_workspace(exp_sums, max_logits, tmp_out, query, key_cache, block_tables, partition_size);
  const at::cuda::OptionalCUDAGuard guard(query.device());
  const at::Tensor q = vector_aligned(query);
  auto args = attention_args(out, q, key_cache, value_cache, block_tables, seq_lens, scale,
                             alibi_slopes);
  args.exp_sums = exp_sums.data_ptr<float>();
  args.max_logits = max_logits.data_ptr<float>();
  args.tmp_out = tmp_out.data_ptr();
  args.partition_size = partition_size;
  args.max_partitions = tmp_out.size(2);
  check_launch(launch_paged_attention(args, dtype_of(query), stream()));
}

void skinny_matmul(at::Tensor& out, const at::Tensor& input, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias) {
  check_skinny_matmul(out, input, weight, bias);
  const at::cuda::OptionalCUDAGuard guard(input.device());
  const at::Tensor x = vector_aligned(input), w = vector_aligned(weight);
  check_launch(launch_skinny_matmul(out.data_ptr(), x.data_ptr(), w.data_ptr(),
                                    bias.has_value() ? bias->data_ptr() : nullptr, x.size(0),
                                    weight.size(0), weight.size(1), x.stride(0), dtype_of(x),
                                    stream()));
}

void wna16_matmul(at::Tensor& out, const at::Tensor& input, const at::Tensor& qweight,
                  const at::Tensor& scales, const at::Tensor& zeros, int64_t bits,
                  int64_t group_size, const std::optional<at::Tensor>& bias) {
  check_wna16(qweight, scales, zeros, bits, group_size);
  const int64_t n = qweight.size(0), k = scales.size(1) * group_size;
  check_wna16_matmul(out, input, scales, bias, n, k);
  const at::cuda::OptionalCUDAGuard guard(input.device());
  const at::Tensor x = vector_aligned(input);
  check_launch(launch_wna16_matmul(out.data_ptr(), x.data_ptr(), qweight.data_ptr(),
                                   scales.data_ptr(), zeros.data_ptr(),
                                   bias.has_value() ? bias->data_ptr() : nullptr, x.size(0), n, k,
                                   x.stride(0), bits, group_size, dtype_of(x), stream()));
}

void dequantize_wna16(at::Tensor& out, const at::Tensor& qweight, const at::Tensor& scales,
                      const at::Tensor& zeros, int64_t bits, int64_t group_size) {
  check_wna16(qweight, scales, zeros, bits, group_size);
  const int64_t n = qweight.size(0), k = scales.size(1) * group_size;
  check_dequantize_wna16(out, scales, n, k);
  const at::cuda::OptionalCUDAGuard guard(out.device());
  check_launch(launch_dequantize_wna16(out.data_ptr(), qweight.data_ptr(), scales.data_ptr(),
                                       zeros.data_ptr(), n, k, bits, group_size,
                                       dtype_of(scales), stream()));
}

void lut_matmul(at::Tensor& out, const at::Tensor& input, const at::Tensor& qweight,
                const at::Tensor& lut, const std::optional<at::Tensor>& bias) {
  check_lut(qweight, lut);
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8;
  check_wna16_matmul(out, input, lut, bias, n, k);
  const at::cuda::OptionalCUDAGuard guard(input.device());
  const at::Tensor x = vector_aligned(input);
  check_launch(launch_lut_matmul(out.data_ptr(), x.data_ptr(), qweight.data_ptr(), lut.data_ptr(),
                                 bias.has_value() ? bias->data_ptr() : nullptr, x.size(0), n, k,
                                 x.stride(0), dtype_of(x), stream()));
}

void dequantize_lut(at::Tensor& out, const at::Tensor& qweight, const at::Tensor& lut) {
  check_lut(qweight, lut);
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8;
  check_dequantize_wna16(out, lut, n, k);
  const at::cuda::OptionalCUDAGuard guard(out.device());
  check_launch(launch_dequantize_lut(out.data_ptr(), qweight.data_ptr(), lut.data_ptr(), n, k,
                                     dtype_of(lut), stream()));
}

void greedy_sample(at::Tensor& tokens, at::Tensor& logprobs, const at::Tensor& logits) {
  check_greedy_sample(tokens, logprobs, logits);
  const at::cuda::OptionalCUDAGuard guard(logits.device());
  const bool aligned = reinterpret_cast<uintptr_t>(logits.data_ptr()) % 16 == 0;
  check_launch(launch_greedy_sample(tokens.data_ptr<int64_t>(), logprobs.data_ptr<float>(),
                                    logits.data_ptr(), logits.size(0), logits.size(1),
                                    logits.stride(0), aligned, dtype_of(logits), stream()));
}

}  // namespace
}  // namespace ie::gpu

TORCH_LIBRARY_IMPL(inference_engine, CUDA, m) {
  m.impl("rms_norm", &ie::gpu::rms_norm);
  m.impl("fused_add_rms_norm", &ie::gpu::fused_add_rms_norm);
  m.impl("rotary_embedding", &ie::gpu::rotary_embedding);
  m.impl("rotary_and_cache", &ie::gpu::rotary_and_cache);
  m.impl("silu_and_mul", &ie::gpu::act_and_mul<ie::gpu::Activation::kSilu>);
  m.impl("gelu_and_mul", &ie::gpu::act_and_mul<ie::gpu::Activation::kGelu>);
  m.impl("gelu_tanh_and_mul", &ie::gpu::act_and_mul<ie::gpu::Activation::kGeluTanh>);
  m.impl("reshape_and_cache", &ie::gpu::reshape_and_cache);
  m.impl("copy_blocks", &ie::gpu::copy_blocks);
  m.impl("swap_blocks", &ie::gpu::swap_blocks);
  m.impl("paged_attention_v1", &ie::gpu::paged_attention_v1);
  m.impl("paged_attention_v2", &ie::gpu::paged_attention_v2);
  m.impl("skinny_matmul", &ie::gpu::skinny_matmul);
  m.impl("greedy_sample", &ie::gpu::greedy_sample);
  m.impl("wna16_matmul", &ie::gpu::wna16_matmul);
  m.impl("dequantize_wna16", &ie::gpu::dequantize_wna16);
  m.impl("lut_matmul", &ie::gpu::lut_matmul);
  m.impl("dequantize_lut", &ie::gpu::dequantize_lut);
}
