// Paged KV-cache writes and block copies. A cache row (one token of one layer) is
// num_kv_heads * head_size contiguous values; slot = block * block_size + row.
#include <type_traits>

#include "dtype.cuh"

namespace ie::gpu {
namespace {

constexpr int kThreads = 256;

// Copies `elems` values of T, as 16-byte vectors when `vectorized`.
template <typename T>
__device__ __forceinline__ void copy_row(T* __restrict__ dst, const T* __restrict__ src, int elems,
                                         bool vectorized) {
  if (vectorized) {
    const uint4* s = reinterpret_cast<const uint4*>(src);
    uint4* d = reinterpret_cast<uint4*>(dst);
    for (int i = threadIdx.x; i < elems / kVec<T>; i += kThreads) d[i] = s[i];
  } else {
    for (int i = threadIdx.x; i < elems; i += kThreads) dst[i] = src[i];
  }
}

// Converts `elems` values of T to the cache's type C (FP8: rounded to nearest, saturated).
template <typename T, typename C>
__device__ __forceinline__ void convert_row(C* __restrict__ dst, const T* __restrict__ src,
                                            int elems) {
  for (int i = threadIdx.x; i < elems; i += kThreads) dst[i] = from_float<C>(to_float(src[i]));
}

template <typename T, typename C>
__global__ IE_LAUNCH_BOUNDS(kThreads) void reshape_and_cache_kernel(
    const T* __restrict__ key,        // [tokens, row_elems], row stride key_stride
    const T* __restrict__ value,      // [tokens, row_elems], row stride value_stride
    C* __restrict__ key_cache,        // [num_blocks * block_size, row_elems]
    C* __restrict__ value_cache,      // [num_blocks * block_size, row_elems]
    const int64_t* __restrict__ slot_mapping,  // [tokens]; negative: padding, not stored
    int row_elems, int64_t key_stride, int64_t value_stride, bool vectorized) {
  const int64_t slot = slot_mapping[blockIdx.x];
  if (slot < 0) return;
  if constexpr (std::is_same_v<T, C>) {
    copy_row(key_cache + slot * row_elems, key + blockIdx.x * key_stride, row_elems, vectorized);
    copy_row(value_cache + slot * row_elems, value + blockIdx.x * value_stride, row_elems,
             vectorized);
  } else {
    convert_row(key_cache + slot * row_elems, key + blockIdx.x * key_stride, row_elems);
    convert_row(value_cache + slot * row_elems, value + blockIdx.x * value_stride, row_elems);
  }
}

__global__ IE_LAUNCH_BOUNDS(kThreads) void copy_blocks_kernel(
    const int64_t* __restrict__ cache_ptrs,     // [num_caches]
    const int64_t* __restrict__ block_mapping,  // [num_pairs, 2]: (src, dst)
    int64_t block_vecs) {                       // 16-byte vectors per block
  uint4* cache = reinterpret_cast<uint4*>(cache_ptrs[blockIdx.y]);
  const uint4* src = cache + block_mapping[2 * blockIdx.x] * block_vecs;
  uint4* dst = cache + block_mapping[2 * blockIdx.x + 1] * block_vecs;
  for (int64_t i = threadIdx.x; i < block_vecs; i += kThreads) dst[i] = src[i];
}

}  // namespace

bool fp8_cache_supported() { return IE_HAS_FP8; }

const char* launch_reshape_and_cache(const void* key, const void* value, void* key_cache,
                                     void* value_cache, const int64_t* slot_mapping, int64_t tokens,
                                     int row_elems, int64_t key_stride, int64_t value_stride,
                                     DType dtype, bool fp8_cache, cudaStream_t stream) {
#if !IE_HAS_FP8
  if (fp8_cache) return "reshape_and_cache: no FP8 KV cache on this platform";
#endif
  if (tokens == 0) return nullptr;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = kVec<T>;
    const bool aligned = reinterpret_cast<uintptr_t>(key) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(value) % 16 == 0;
    const bool vectorized = aligned && row_elems % V == 0 && key_stride % V == 0 && value_stride % V == 0;
    auto run = [&](auto cache_tag) {
      using C = decltype(cache_tag);
      reshape_and_cache_kernel<T, C><<<tokens, kThreads, 0, stream>>>(
          static_cast<const T*>(key), static_cast<const T*>(value), static_cast<C*>(key_cache),
          static_cast<C*>(value_cache), slot_mapping, row_elems, key_stride, value_stride,
          vectorized);
    };
#if IE_HAS_FP8
    if (fp8_cache) return run(fp8_t{});
#endif
    run(T{});
  });
  return nullptr;
}

const char* launch_copy_blocks(const int64_t* cache_ptrs, const int64_t* block_mapping,
                               int num_caches, int num_pairs, int64_t block_bytes,
                               cudaStream_t stream) {
  if (block_bytes % 16 != 0) return "copy_blocks: a cache block must be a multiple of 16 bytes";
  if (num_caches == 0 || num_pairs == 0) return nullptr;
  // Pairs on x: grid y is limited to 65535, and a swap-in can name more pairs than that.
  copy_blocks_kernel<<<dim3(num_pairs, num_caches), kThreads, 0, stream>>>(cache_ptrs, block_mapping,
                                                                          block_bytes / 16);
  return nullptr;
}

}  // namespace ie::gpu
