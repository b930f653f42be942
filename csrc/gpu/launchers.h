// Raw-pointer launchers of the GPU kernels: no torch types, so the kernel files compile with nvcc
// or hipcc alone (see .ci/compile_check.sh). gpu_bindings.cpp wraps them as torch ops.
// Every launcher returns nullptr on success or a static message naming the unsupported case.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ie::gpu {

enum class DType { kFloat32, kFloat16, kBFloat16 };

// Whether this build has FP8 (e4m3) KV-cache kernels (CUDA: yes; ROCm: no).
bool fp8_cache_supported();
enum class Activation { kSilu, kGelu, kGeluTanh };

// out/residual_out/input/residual: [rows, hidden] contiguous; weight: [hidden]. residual and
// residual_out are nullptr for plain rms_norm.
const char* launch_rms_norm(void* out, void* residual_out, const void* input, const void* residual,
                            const void* weight, int64_t rows, int hidden, float eps, DType dtype,
                            cudaStream_t stream);

// out: [rows, d]; input: [rows, 2 * d] holding (gate, up).
const char* launch_act_and_mul(Activation act, void* out, const void* input, int64_t rows, int d,
                               DType dtype, cudaStream_t stream);

// Rotary embedding of a step's query and key heads. query/key (and value) rows at strides
// q_stride/k_stride/v_stride (elements); query_out contiguous; cos_sin_cache [max_position,
// rot_dim] in float32 (cache_is_float) or the query dtype. Without key_cache the rotated keys go
// to key_out (contiguous); with it they go, and the values with them, to their rows of the paged
// caches ([num_slots, num_kv_heads * head_size]) at slot_mapping (negative: padding, not stored).
struct RotaryArgs {
  void* query_out = nullptr;
  void* key_out = nullptr;
  const int64_t* positions = nullptr;
  const void* query = nullptr;
  const void* key = nullptr;
  const void* value = nullptr;
  const void* cos_sin_cache = nullptr;
  bool cache_is_float = true;
  void* key_cache = nullptr;
  void* value_cache = nullptr;
  bool fp8_cache = false;  // the caches hold FP8 (e4m3) values
  const int64_t* slot_mapping = nullptr;
  int64_t tokens = 0;
  int num_heads = 0, num_kv_heads = 0, head_size = 0, rot_dim = 0;
  int64_t q_stride = 0, k_stride = 0, v_stride = 0;
  bool is_neox = true;
};
const char* launch_rotary(const RotaryArgs& args, DType dtype, cudaStream_t stream);

// key/value: [tokens, row_elems] at row strides (elements); caches: [num_slots, row_elems], of
// key's type or FP8 (e4m3) with fp8_cache.
const char* launch_reshape_and_cache(const void* key, const void* value, void* key_cache,
                                     void* value_cache, const int64_t* slot_mapping, int64_t tokens,
                                     int row_elems, int64_t key_stride, int64_t value_stride,
                                     DType dtype, bool fp8_cache, cudaStream_t stream);

// cache_ptrs: [num_caches] device addresses of the caches; block_mapping: [num_pairs, 2] on device.
const char* launch_copy_blocks(const int64_t* cache_ptrs, const int64_t* block_mapping,
                               int num_caches, int num_pairs, int64_t block_bytes,
                               cudaStream_t stream);

// Decode attention over the paged cache. partition_size == 0 is v1 (out is [num_seqs, num_heads,
// head_size]); otherwise v2 writes per-partition results to tmp_out [num_seqs, num_heads,
// max_partitions, head_size], exp_sums and max_logits [num_seqs, num_heads, max_partitions], then
// merges them into out.
struct PagedAttentionArgs {
  void* out;
  float* exp_sums;
  float* max_logits;
  void* tmp_out;
  const void* query;        // [num_seqs, num_heads, head_size], rows query_stride apart
  const void* key_cache;    // [num_blocks, block_size, num_kv_heads, head_size]
  const void* value_cache;  // [num_blocks, block_size, num_kv_heads, head_size]
  bool fp8_cache;           // the caches hold FP8 (e4m3), not the query's type
  const int* block_tables;  // [num_seqs, max_blocks]
  const int* seq_lens;      // [num_seqs]
  const float* alibi_slopes;  // [num_heads] or nullptr
  float scale;
  int num_seqs, num_heads, num_kv_heads, head_size, block_size, max_blocks;
  int partition_size, max_partitions;
  int64_t query_stride;
};
const char* launch_paged_attention(const PagedAttentionArgs& args, DType dtype, cudaStream_t stream);

// out: [rows, n] contiguous; x: [rows, k] at row stride x_stride (elements), 16-byte aligned rows;
// w: [n, k] contiguous; bias: [n] or nullptr. 1 to 8 rows, 16-bit types, tensor cores only.
const char* launch_skinny_matmul(void* out, const void* x, const void* w, const void* bias,
                                 int rows, int n, int k, int64_t x_stride, DType dtype,
                                 cudaStream_t stream);

// Integer weights (inference_engine/ops/quantized_linear.py): qweight int32 [n, k / (32 / bits)],
// scales and zeros [n, k / group_size] in x's type. wna16_matmul: out [rows, n] = x W^T (+ bias)
// for 1 to 16 rows of x (16-byte aligned, rows x_stride apart); dequantize_wna16: out [n, k] = W.
const char* launch_wna16_matmul(void* out, const void* x, const void* qweight, const void* scales,
                                const void* zeros, const void* bias, int rows, int n, int k,
                                int64_t x_stride, int bits, int group_size, DType dtype,
                                cudaStream_t stream);
const char* launch_dequantize_wna16(void* out, const void* qweight, const void* scales,
                                    const void* zeros, int64_t n, int64_t k, int bits,
                                    int group_size, DType dtype, cudaStream_t stream);
// Look-up weights (SqueezeLLM): qweight int32 [n, k / 8] of 4-bit indices, lut [n, 16] in x's
// type. lut_matmul: out [rows, n] = x W^T (+ bias), 1 to 16 rows; dequantize_lut: out [n, k] = W.
const char* launch_lut_matmul(void* out, const void* x, const void* qweight, const void* lut,
                              const void* bias, int rows, int n, int k, int64_t x_stride,
                              DType dtype, cudaStream_t stream);
const char* launch_dequantize_lut(void* out, const void* qweight, const void* lut, int64_t n,
                                  int64_t k, DType dtype, cudaStream_t stream);

// tokens[r] = the first index of row r's largest logit, logprobs[r] = its log-softmax value.
// logits: [rows, vocab] at row stride row_stride (elements); aligned: 16-byte aligned data.
const char* launch_greedy_sample(int64_t* tokens, float* logprobs, const void* logits,
                                 int64_t rows, int vocab, int64_t row_stride, bool aligned,
                                 DType dtype, cudaStream_t stream);

}  // namespace ie::gpu
