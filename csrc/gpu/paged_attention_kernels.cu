// Host side of paged attention v1/v2: picks the kernel (tensor-core or CUDA-core) and its instance
// (storage type, head size, query heads per block), sizes its shared memory and launches it (plus
// the v2 reduce kernel).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "paged_attention.cuh"
#include "paged_attention_mma.cuh"

namespace ie::gpu {
namespace {

template <typename T>
void launch_reduce(const PagedAttentionArgs& a, cudaStream_t stream) {
  paged_attention_reduce_kernel<T><<<dim3(a.num_heads, a.num_seqs), kAttnThreads,
                                     sizeof(float) * a.max_partitions, stream>>>(
      static_cast<T*>(a.out), a.exp_sums, a.max_logits, static_cast<const T*>(a.tmp_out),
      a.seq_lens, a.head_size, a.partition_size, a.max_partitions);
}

template <typename T, int HEAD_SIZE, int QPB>
const char* launch_instance(const PagedAttentionArgs& a, cudaStream_t stream) {
  const bool v2 = a.partition_size > 0;
  const int logits_stride = v2 ? a.partition_size : a.max_blocks * a.block_size;
  const int smem = static_cast<int>(
      sizeof(float) * std::max(QPB * logits_stride, kAttnWarps * QPB * HEAD_SIZE));
  auto kernel = paged_attention_kernel<T, HEAD_SIZE, QPB>;
  if (smem > 48 * 1024) {
    if (smem > max_dynamic_shared_memory()) {
      return "paged_attention_v1: the context's logits exceed shared memory; use paged_attention_v2";
    }
    if (!allow_dynamic_shared_memory(kernel, smem)) {
      return "paged_attention: could not raise the shared-memory limit";
    }
  }
  const dim3 grid(a.num_kv_heads * (a.num_heads / a.num_kv_heads / QPB), a.num_seqs,
                  v2 ? a.max_partitions : 1);
  kernel<<<grid, kAttnThreads, smem, stream>>>(
      static_cast<T*>(v2 ? a.tmp_out : a.out), a.exp_sums, a.max_logits,
      static_cast<const T*>(a.query), static_cast<const T*>(a.key_cache),
      static_cast<const T*>(a.value_cache), a.block_tables, a.seq_lens, a.alibi_slopes, a.scale,
      a.num_heads, a.num_kv_heads, a.block_size, a.max_blocks, a.partition_size, logits_stride,
      a.query_stride);
  if (v2) launch_reduce<T>(a, stream);
  return nullptr;
}

#if IE_WARP_MMA
// The tensor-core kernel: as many query heads per block as divide the group, up to 8 (the mma's n).
template <typename T, int HEAD_SIZE, bool FP8>
const char* launch_mma(const PagedAttentionArgs& a, cudaStream_t stream) {
  using Cache = typename MmaAttnShape<T, HEAD_SIZE, FP8>::Cache;
  const bool v2 = a.partition_size > 0;
  const int group = a.num_heads / a.num_kv_heads;
  int queries = std::min(group, kMmaMaxQueries);
  while (group % queries != 0) --queries;
  const dim3 grid(a.num_kv_heads * (group / queries), a.num_seqs, v2 ? a.max_partitions : 1);
  constexpr int smem = mma_attention_shared_bytes<T, HEAD_SIZE, FP8>();
  // Past 48 KiB with its static arrays (the warps' max and sum) the kernel must opt in to more.
  constexpr int static_bytes = 2 * kAttnWarps * kMmaMaxQueries * sizeof(float);
  auto kernel = paged_attention_mma_kernel<T, HEAD_SIZE, FP8>;
  if (smem + static_bytes > 48 * 1024 && !allow_dynamic_shared_memory(kernel, smem)) {
    return "paged_attention: could not raise the shared-memory limit";
  }
  kernel<<<grid, kAttnThreads, smem, stream>>>(
      static_cast<T*>(v2 ? a.tmp_out : a.out), a.exp_sums, a.max_logits,
      static_cast<const T*>(a.query), static_cast<const Cache*>(a.key_cache),
      static_cast<const Cache*>(a.value_cache), a.block_tables, a.seq_lens, a.alibi_slopes,
      a.scale, a.num_heads, a.num_kv_heads, a.block_size, a.max_blocks, a.partition_size,
      a.query_stride, queries);
  if (v2) launch_reduce<T>(a, stream);
  return nullptr;
}

// Whether the tensor-core kernel runs: on sm_80 or later, unless the environment's
// INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL=simt asks for the CUDA-core kernel (read at every launch,
// so that tests and benchmarks compare the two in one process; a CUDA graph keeps the kernel it
// captured).
bool use_mma_kernel() {
  static const bool supported = warp_mma_supported();
  const char* choice = std::getenv("INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL");
  return supported && !(choice != nullptr && std::strcmp(choice, "simt") == 0);
}
#endif

// The most query heads per block that divides the group and whose queries fit in registers.
// An FP8 cache only on the tensor cores.
template <typename T, int HEAD_SIZE>
const char* launch_head_size(const PagedAttentionArgs& a, cudaStream_t stream) {
#if IE_WARP_MMA
  if constexpr (kHasMmaAttention<T, HEAD_SIZE>) {
    // Its chunks find their cache block by shifting: block_size a power of two (the engine's are).
    if (use_mma_kernel() && (a.block_size & (a.block_size - 1)) == 0) {
      return a.fp8_cache ? launch_mma<T, HEAD_SIZE, true>(a, stream)
                         : launch_mma<T, HEAD_SIZE, false>(a, stream);
    }
  }
#endif
  if (a.fp8_cache) {
    return "paged_attention: an FP8 KV cache needs the tensor-core kernel (CUDA sm_80+, fp16 or "
           "bf16 queries, head size 64 or 128, a power-of-two block_size)";
  }
  constexpr int kMax = AttnShape<T, HEAD_SIZE>::kMaxQueries;
  const int group = a.num_heads / a.num_kv_heads;
  int qpb = 1;
  while (qpb * 2 <= kMax && group % (qpb * 2) == 0) qpb *= 2;
  switch (qpb) {
    case 1: return launch_instance<T, HEAD_SIZE, 1>(a, stream);
    case 2: if constexpr (kMax >= 2) return launch_instance<T, HEAD_SIZE, 2>(a, stream);
    case 4: if constexpr (kMax >= 4) return launch_instance<T, HEAD_SIZE, 4>(a, stream);
    case 8: if constexpr (kMax >= 8) return launch_instance<T, HEAD_SIZE, 8>(a, stream);
  }
  return "paged_attention: no kernel for this grouping";
}

template <typename T>
const char* launch_typed(const PagedAttentionArgs& a, cudaStream_t stream) {
  switch (a.head_size) {
    case 64: return launch_head_size<T, 64>(a, stream);
    case 80: return launch_head_size<T, 80>(a, stream);
    case 96: return launch_head_size<T, 96>(a, stream);
    case 112: return launch_head_size<T, 112>(a, stream);
    case 128: return launch_head_size<T, 128>(a, stream);
    case 256: return launch_head_size<T, 256>(a, stream);
  }
  return "paged_attention: head_size must be 64, 80, 96, 112, 128 or 256";
}

}  // namespace

const char* launch_paged_attention(const PagedAttentionArgs& args, DType dtype, cudaStream_t stream) {
  if (args.block_size % kChunkTokens != 0) return "paged_attention: block_size must be a multiple of 16";
  if (args.partition_size % kChunkTokens != 0) {
    return "paged_attention_v2: partition_size must be a multiple of 16";
  }
  if (args.num_kv_heads <= 0 || args.num_heads % args.num_kv_heads != 0) {
    return "paged_attention: num_heads must be a multiple of num_kv_heads";
  }
  if (args.num_seqs == 0) return nullptr;
  const char* error = nullptr;
  dispatch_dtype(dtype, [&](auto tag) { error = launch_typed<decltype(tag)>(args, stream); });
  return error;
}

}  // namespace ie::gpu
