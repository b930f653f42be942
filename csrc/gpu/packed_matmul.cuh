// The few-row product over packed weights (1 to 16 rows of x: decode), shared by the integer
// kernels (wna16_kernels.cu) and the look-up ones (lut_kernels.cu). It is skinny_matmul_kernels.cu's
// stream over W with the weights turned into 16-bit values in registers: a thread block owns 16
// output features, its 8 warps split K in windows, each lane loads one 16-byte vector of packed
// values per W row per window (32 4-bit or 16 8-bit values: a window is 4 such vectors, 128 or 64
// inputs), turns them into 16-bit pairs and multiplies them with mma.m16n8k16 against x (one
// 8-token tile, or two for 9-16 rows). The pairs are values j and j + 4 of a word (j and j + 2 for
// 8 bits), which one mask extracts; x's values are paired the same way (byte permutes), since the
// mma only needs A and B to agree on k.
//
// What a value becomes is the `Dequant` policy's: its Params (kernel argument), its Shared
// (block shared memory), a per-window Constants it loads for W rows `row` and `row` + 8, and
// pair(constants, word, shift, high) giving the 16-bit pair of values at bits shift.. and
// 16 + shift.. of `word` (of row + 8 when `high`).
#pragma once

#include <cstring>
#include <type_traits>

#include "dtype.cuh"

#if IE_WARP_MMA
namespace ie::gpu::packed {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * WARP_SIZE;

template <typename T>
struct Pair;
template <>
struct Pair<fp16_t> {
  using type = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // (1024, 1024): + q in the low mantissa bits
  static constexpr float kMagicValue = 1024.f;
};
template <>
struct Pair<bf16_t> {
  using type = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // (128, 128)
  static constexpr float kMagicValue = 128.f;
};

template <typename To, typename From>
__device__ __forceinline__ To bit_cast_(const From& v) {
  static_assert(sizeof(To) == sizeof(From));
  To out;
  memcpy(&out, &v, sizeof(To));
  return out;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// One window of one lane: its vector of packed values in W rows `row` and `row` + 8, their
// constants, and x's matching values for token `row` of each 8-token tile.
template <typename T, int BITS, int TILES, typename Dequant>
struct Window {
  static constexpr int kValues = 128 / BITS;               // packed values in one 16-byte vector
  static constexpr int kXVecs = kValues * sizeof(T) / 16;  // x's 16-byte vectors for them
  uint4 w_lo, w_hi, x[TILES][kXVecs];
  typename Dequant::Constants c;

  __device__ void load(const Dequant& dequant, const uint32_t* q_rows, int64_t words,
                       const T* x_rows, int64_t x_stride, int rows, int row, int first) {
    const int64_t word = first / (32 / BITS);  // first: the lane's first input
    w_lo = *reinterpret_cast<const uint4*>(q_rows + row * words + word);
    w_hi = *reinterpret_cast<const uint4*>(q_rows + (row + 8) * words + word);
    dequant.load(c, row, first);
#pragma unroll
    for (int t = 0; t < TILES; ++t) {
      const int token = t * 8 + row;
#pragma unroll
      for (int v = 0; v < kXVecs; ++v) {
        x[t][v] = token < rows ? reinterpret_cast<const uint4*>(x_rows + token * x_stride + first)[v]
                               : make_uint4(0, 0, 0, 0);
      }
    }
  }

  // x's values j and j + `apart` of the 2 * apart starting at value `base`, as a pair.
  __device__ uint32_t x_pair(int t, int base, int j, int apart) const {
    const int lo = base + j, hi = base + j + apart;  // value indices among the lane's kValues
    const uint32_t a = word_of(x[t][lo / 8], (lo % 8) / 2), b = word_of(x[t][hi / 8], (hi % 8) / 2);
    return __byte_perm(a, b, lo % 2 == 0 ? 0x5410 : 0x7632);
  }

  __device__ void multiply(const Dequant& dequant, float (&acc)[TILES][4]) const {
    constexpr int P = 32 / BITS, kApart = P / 2;
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // the vector's words
      const uint32_t lo = word_of(w_lo, i), hi = word_of(w_hi, i);
#pragma unroll
      for (int j = 0; j < kApart; j += 2) {  // one mma: pairs (j, j + apart), (j + 1, j + 1 + apart)
        const uint32_t a[4] = {dequant.pair(c, lo, j * BITS, false), dequant.pair(c, hi, j * BITS, true),
                               dequant.pair(c, lo, (j + 1) * BITS, false),
                               dequant.pair(c, hi, (j + 1) * BITS, true)};
#pragma unroll
        for (int t = 0; t < TILES; ++t) {
          const uint32_t b[2] = {x_pair(t, i * P, j, kApart), x_pair(t, i * P, j + 1, kApart)};
          mma_16x8x16<T>(acc[t], a, b);
        }
      }
    }
  }
};

template <typename T, int BITS, int TILES, typename Dequant>
__global__ IE_LAUNCH_BOUNDS_RESIDENT(kThreads, 2) void packed_matmul_kernel(
    T* __restrict__ out, const T* __restrict__ x, const uint32_t* __restrict__ qweight,
    typename Dequant::Params params, const T* __restrict__ bias, int rows, int n, int k,
    int64_t x_stride) {
  using W = Window<T, BITS, TILES, Dequant>;
  constexpr int kWindow = 4 * W::kValues;  // inputs per warp step
  __shared__ float partial[kWarps][16][8 * TILES];  // [warp][feature][token]
  __shared__ typename Dequant::Shared shared;
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  const int row = lane / 4, col = lane % 4;  // the mma fragments' groupID, thread in group
  const int feature0 = blockIdx.x * 16;
  const int64_t words = k / (32 / BITS);
  const uint32_t* q_rows = qweight + feature0 * words;
  const Dequant dequant(params, feature0, k, shared);  // (syncs the block where it fills `shared`)
  const int windows = k / kWindow;

  float acc[TILES][4] = {};
  W cur, next;
  int win = warp;
  if (win < windows) cur.load(dequant, q_rows, words, x, x_stride, rows, row, win * kWindow + col * W::kValues);
  for (; win < windows; win += kWarps) {
    const int ahead = win + kWarps;
    if (ahead < windows) {
      next.load(dequant, q_rows, words, x, x_stride, rows, row, ahead * kWindow + col * W::kValues);
    }
    cur.multiply(dequant, acc);
    cur = next;
  }

#pragma unroll
  for (int t = 0; t < TILES; ++t) {  // D: features row, row + 8 x tokens 2col, 2col + 1
    partial[warp][row][t * 8 + 2 * col] = acc[t][0];
    partial[warp][row][t * 8 + 2 * col + 1] = acc[t][1];
    partial[warp][row + 8][t * 8 + 2 * col] = acc[t][2];
    partial[warp][row + 8][t * 8 + 2 * col + 1] = acc[t][3];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < 16 * 8 * TILES; idx += kThreads) {
    const int feature = idx % 16, token = idx / 16;
    if (token >= rows) continue;
    float sum = bias != nullptr ? to_float(bias[feature0 + feature]) : 0.f;
#pragma unroll
    for (int v = 0; v < kWarps; ++v) sum += partial[v][feature][token];
    out[static_cast<int64_t>(token) * n + feature0 + feature] = from_float<T>(sum);
  }
}

// One 8-token tile up to 8 rows, two up to 16.
template <typename T, int BITS, typename Dequant>
void launch_packed_matmul(T* out, const T* x, const uint32_t* qweight,
                          const typename Dequant::Params& params, const T* bias, int rows, int n,
                          int k, int64_t x_stride, cudaStream_t stream) {
  if (rows <= 8) {
    packed_matmul_kernel<T, BITS, 1, Dequant><<<n / 16, kThreads, 0, stream>>>(
        out, x, qweight, params, bias, rows, n, k, x_stride);
  } else {
    packed_matmul_kernel<T, BITS, 2, Dequant><<<n / 16, kThreads, 0, stream>>>(
        out, x, qweight, params, bias, rows, n, k, x_stride);
  }
}

}  // namespace ie::gpu::packed
#endif
