// Rotary position embedding: a token's query and key heads, kHeadsPerBlock to a thread block (a
// decode batch of a few tokens still spreads over many SMs).
// NeoX pairs element i of a head with i + rot_dim / 2; GPT-J pairs 2i with 2i + 1.
#include "dtype.cuh"

namespace ie::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kHeadsPerBlock = 4;

// Rotates (or, past rot_dim, copies) `num_heads` heads of one token.
template <typename T, typename C>
__device__ void rotate_heads(T* __restrict__ out, const T* __restrict__ in, const C* __restrict__ cos,
                             const C* __restrict__ sin, int num_heads, int head_size, int rot_dim,
                             bool is_neox) {
  const int half = rot_dim / 2;
  for (int i = threadIdx.x; i < num_heads * half; i += kThreads) {
    const int head = i / half, k = i % half;
    const int a = head * head_size + (is_neox ? k : 2 * k);
    const int b = a + (is_neox ? half : 1);
    const float c = to_float(cos[k]), s = to_float(sin[k]);
    const float x1 = to_float(in[a]), x2 = to_float(in[b]);
    out[a] = from_float<T>(x1 * c - x2 * s);
    out[b] = from_float<T>(x2 * c + x1 * s);
  }
  const int pass = head_size - rot_dim;
  for (int i = threadIdx.x; i < num_heads * pass; i += kThreads) {
    const int idx = (i / pass) * head_size + rot_dim + i % pass;
    out[idx] = in[idx];
  }
}

template <typename T, typename C>
__global__ IE_LAUNCH_BOUNDS(kThreads) void rotary_kernel(
    T* __restrict__ query_out,         // [tokens, num_heads * head_size]
    T* __restrict__ key_out,           // [tokens, num_kv_heads * head_size]
    const int64_t* __restrict__ positions,  // [tokens]
    const T* __restrict__ query,       // [tokens, num_heads * head_size], row stride q_stride
    const T* __restrict__ key,         // [tokens, num_kv_heads * head_size], row stride k_stride
    const C* __restrict__ cos_sin_cache,  // [max_position, rot_dim]: cos half, then sin half
    int num_heads, int num_kv_heads, int head_size, int rot_dim, int64_t q_stride,
    int64_t k_stride, bool is_neox) {
  const int64_t t = blockIdx.x;
  const C* cos = cos_sin_cache + positions[t] * rot_dim;
  const C* sin = cos + rot_dim / 2;
  // This block's heads: [first, last) of the token's query heads, then its key heads.
  const int first = blockIdx.y * kHeadsPerBlock;
  const int last = min(first + kHeadsPerBlock, num_heads + num_kv_heads);
  if (first < num_heads) {
    const int n = min(last, num_heads) - first;
    const int64_t offset = static_cast<int64_t>(first) * head_size;
    rotate_heads(query_out + t * num_heads * head_size + offset, query + t * q_stride + offset, cos,
                 sin, n, head_size, rot_dim, is_neox);
  }
  if (last > num_heads) {
    const int k0 = max(first - num_heads, 0), n = last - num_heads - k0;
    const int64_t offset = static_cast<int64_t>(k0) * head_size;
    rotate_heads(key_out + t * num_kv_heads * head_size + offset, key + t * k_stride + offset, cos,
                 sin, n, head_size, rot_dim, is_neox);
  }
}

}  // namespace

const char* launch_rotary_embedding(void* query_out, void* key_out, const int64_t* positions,
                                    const void* query, const void* key, const void* cos_sin_cache,
                                    bool cache_is_float, int64_t tokens, int num_heads,
                                    int num_kv_heads, int head_size, int rot_dim, int64_t q_stride,
                                    int64_t k_stride, bool is_neox, DType dtype, cudaStream_t stream) {
  if (tokens == 0) return nullptr;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(tokens, (num_heads + num_kv_heads + kHeadsPerBlock - 1) / kHeadsPerBlock);
    auto run = [&](auto cache) {
      rotary_kernel<<<grid, kThreads, 0, stream>>>(
          static_cast<T*>(query_out), static_cast<T*>(key_out), positions,
          static_cast<const T*>(query), static_cast<const T*>(key), cache, num_heads, num_kv_heads,
          head_size, rot_dim, q_stride, k_stride, is_neox);
    };
    if (cache_is_float) {
      run(static_cast<const float*>(cos_sin_cache));
    } else {
      run(static_cast<const T*>(cos_sin_cache));
    }
  });
  return nullptr;
}

}  // namespace ie::gpu
