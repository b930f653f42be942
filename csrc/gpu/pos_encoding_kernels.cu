// Rotary position embedding: a token's query and key heads, several to a thread block (a decode
// batch of a few tokens still spreads over many SMs).
// NeoX pairs element i of a head with i + rot_dim / 2; GPT-J pairs 2i with 2i + 1.
// A thread rotates N pairs: for NeoX with aligned rows, N = kVec<T> (16-byte loads of both
// halves: a prompt step's rotary ran ~3x slower than its bytes with one pair a thread); else 1.
// With a paged cache the rotated keys, and the values, go straight to their cache slots: the
// attention layer's separate cache write (one more kernel a layer) is then not needed.
#include <algorithm>
#include <type_traits>

#include "dtype.cuh"

namespace ie::gpu {
namespace {

constexpr int kThreads = 256;

// Stores N values computed in float as O, rounded to T first (an FP8 cache then holds what
// rotating in T and casting, as the unfused ops and the references do, would store).
template <typename T, typename O, int N>
__device__ __forceinline__ void store_as(O* __restrict__ out, const float* y) {
  if constexpr (std::is_same_v<T, O>) {
    store_floats<T, N>(out, y);
  } else {
#pragma unroll
    for (int e = 0; e < N; ++e) out[e] = from_float<O>(to_float(from_float<T>(y[e])));
  }
}

// Rotates (or, past rot_dim, copies) `num_heads` heads of one token into `out`, of type O (T, or
// an FP8 cache's).
template <typename T, typename C, int N, typename O = T>
__device__ void rotate_heads(O* __restrict__ out, const T* __restrict__ in, const C* __restrict__ cos,
                             const C* __restrict__ sin, int num_heads, int head_size, int rot_dim,
                             bool is_neox) {
  const int half = rot_dim / 2, per_head = half / N;
  for (int i = threadIdx.x; i < num_heads * per_head; i += kThreads) {
    const int head = i / per_head, k = (i % per_head) * N;
    const int a = head * head_size + (is_neox ? k : 2 * k);
    const int b = a + (is_neox ? half : 1);
    float c[N], s[N], x1[N], x2[N];
    load_floats<C, N>(cos + k, c);
    load_floats<C, N>(sin + k, s);
    if constexpr (N == 1) {
      x1[0] = to_float(in[a]);
      x2[0] = to_float(in[b]);
    } else {
      load_floats<T, N>(in + a, x1);
      load_floats<T, N>(in + b, x2);
    }
    float y1[N], y2[N];
#pragma unroll
    for (int e = 0; e < N; ++e) {
      y1[e] = x1[e] * c[e] - x2[e] * s[e];
      y2[e] = x2[e] * c[e] + x1[e] * s[e];
    }
    store_as<T, O, N>(out + a, y1);
    store_as<T, O, N>(out + b, y2);
  }
  const int pass = head_size - rot_dim;
  for (int i = threadIdx.x; i < num_heads * pass; i += kThreads) {
    const int idx = (i / pass) * head_size + rot_dim + i % pass;
    out[idx] = from_float<O>(to_float(in[idx]));
  }
}

// Copies `elems` values, N at a time, converting them to O.
template <typename T, int N, typename O = T>
__device__ void copy_heads(O* __restrict__ out, const T* __restrict__ in, int elems) {
  for (int i = threadIdx.x * N; i < elems; i += kThreads * N) {
    float x[N];
    load_floats<T, N>(in + i, x);
    store_as<T, O, N>(out + i, x);
  }
}

// Grid: (token, group of heads_per_block heads). A token's heads are numbered query heads first,
// then key heads, then (with a cache) value heads. K: the cache's type (T, or FP8 with a cache).
template <typename T, typename C, int N, typename K>
__global__ IE_LAUNCH_BOUNDS(kThreads) void rotary_kernel(const RotaryArgs a, int heads_per_block) {
  const int64_t t = blockIdx.x;
  const C* cos = static_cast<const C*>(a.cos_sin_cache) + a.positions[t] * a.rot_dim;
  const C* sin = cos + a.rot_dim / 2;
  const int hq = a.num_heads, hk = a.num_kv_heads, size = a.head_size;
  const int64_t kv_row = static_cast<int64_t>(hk) * size;
  const bool to_cache = a.key_cache != nullptr;
  const int64_t slot = to_cache ? a.slot_mapping[t] : 0;
  K* key_dst = to_cache ? static_cast<K*>(a.key_cache) + slot * kv_row
                        : static_cast<K*>(a.key_out) + t * kv_row;
  const int first = blockIdx.y * heads_per_block;
  const int last = min(first + heads_per_block, hq + hk * (to_cache ? 2 : 1));
  if (first < hq) {
    const int n = min(last, hq) - first;
    const int64_t offset = static_cast<int64_t>(first) * size;
    rotate_heads<T, C, N>(static_cast<T*>(a.query_out) + t * hq * size + offset,
                          static_cast<const T*>(a.query) + t * a.q_stride + offset, cos, sin, n,
                          size, a.rot_dim, a.is_neox);
  }
  if (slot < 0) return;  // a padding token: its key and value are not stored
  if (last > hq && first < hq + hk) {
    const int k0 = max(first - hq, 0), n = min(last - hq, hk) - k0;
    const int64_t offset = static_cast<int64_t>(k0) * size;
    rotate_heads<T, C, N, K>(key_dst + offset,
                             static_cast<const T*>(a.key) + t * a.k_stride + offset, cos, sin, n,
                             size, a.rot_dim, a.is_neox);
  }
  if (last > hq + hk) {
    const int v0 = max(first - hq - hk, 0), n = last - hq - hk - v0;
    const int64_t offset = static_cast<int64_t>(v0) * size;
    copy_heads<T, N, K>(static_cast<K*>(a.value_cache) + slot * kv_row + offset,
                        static_cast<const T*>(a.value) + t * a.v_stride + offset, n * size);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* launch_rotary(const RotaryArgs& a, DType dtype, cudaStream_t stream) {
#if !IE_HAS_FP8
  if (a.fp8_cache) return "rotary_and_cache: no FP8 KV cache on this platform";
#endif
  if (a.tokens == 0) return nullptr;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = kVec<T>;
    // 16-byte vectors need every row, half-row and pointer on a 16-byte boundary (the cos/sin
    // rows too, in their own type).
    const bool to_cache = a.key_cache != nullptr;
    const bool vec = a.is_neox && (a.rot_dim / 2) % V == 0 && (a.rot_dim / 2) % 4 == 0 &&
                     a.head_size % V == 0 && a.q_stride % V == 0 && a.k_stride % V == 0 &&
                     aligned16(a.query) && aligned16(a.key) && aligned16(a.query_out) &&
                     aligned16(a.cos_sin_cache) &&
                     (to_cache ? a.v_stride % V == 0 && aligned16(a.value) &&
                                     aligned16(a.key_cache) && aligned16(a.value_cache)
                               : aligned16(a.key_out));
    auto run = [&](auto n_tag, auto cache_tag) {
      constexpr int N = decltype(n_tag)::value;
      using C = decltype(cache_tag);
      const int heads_per_block = std::max(1, kThreads / std::max(1, a.rot_dim / 2 / N));
      const int heads = a.num_heads + a.num_kv_heads * (to_cache ? 2 : 1);
      const dim3 grid(a.tokens, (heads + heads_per_block - 1) / heads_per_block);
#if IE_HAS_FP8
      if (a.fp8_cache) {
        rotary_kernel<T, C, N, fp8_t><<<grid, kThreads, 0, stream>>>(a, heads_per_block);
        return;
      }
#endif
      rotary_kernel<T, C, N, T><<<grid, kThreads, 0, stream>>>(a, heads_per_block);
    };
    auto with_cache_type = [&](auto n_tag) {
      if (a.cache_is_float) {
        run(n_tag, float{});
      } else {
        run(n_tag, T{});
      }
    };
    if (vec) {
      with_cache_type(std::integral_constant<int, V>{});
    } else {
      with_cache_type(std::integral_constant<int, 1>{});
    }
  });
  return nullptr;
}

}  // namespace ie::gpu
