// How paged_attention_mma_kernel's warps read mma fragments out of their shared-memory rings:
// the swizzled row layout, packing of 16-bit pairs, and, for an FP8 (e4m3) cache, the fragments
// of q.k's K and p.v's V^T built from plain 16-byte loads (ldmatrix moves 16-bit values only),
// converted to fp16, with the head dimensions permuted as paged_attention_mma.cuh describes.
#pragma once

#include <type_traits>

#include "paged_attention.cuh"

#if IE_WARP_MMA
namespace ie::gpu {

// Where 16-byte vector `vec` of `row` lies in a chunk's rows: XOR-swizzled by the row's low bits,
// so that the 8 rows an ldmatrix tile reads at one column fall in 8 different banks (rows of
// fewer than 8 vectors, FP8 at head size 64, swizzle within the row).
template <int ROW_BYTES>
__device__ __forceinline__ unsigned swizzled(int row, int vec) {
  constexpr int kMask = (ROW_BYTES / 16 < 8 ? ROW_BYTES / 16 : 8) - 1;
  return row * ROW_BYTES + ((vec ^ (row & kMask)) * 16);
}

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  T pair[2] = {from_float<T>(lo), from_float<T>(hi)};
  return *reinterpret_cast<const uint32_t*>(pair);
}

// A pair of T as the mma's type M: bf16 to fp16 saturates at fp16's largest finite value.
template <typename T, typename M>
__device__ __forceinline__ uint32_t to_mma_pair(uint32_t pair) {
  if constexpr (std::is_same_v<T, M>) {
    return pair;
  } else {
    const T* v = reinterpret_cast<const T*>(&pair);
    constexpr float kMax = 65504.f;
    return pack2<M>(fminf(fmaxf(to_float(v[0]), -kMax), kMax),
                    fminf(fmaxf(to_float(v[1]), -kMax), kMax));
  }
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int w) {
  return w == 0 ? v.x : w == 1 ? v.y : w == 2 ? v.z : v.w;
}

#if IE_HAS_FP8
// q.k for one chunk of FP8 keys (`keys`: the stage's 16 rows of HEAD_SIZE bytes): s += K q.
// Lane (row, col) reads tokens row and row + 8, bytes col * HEAD_SIZE / 4 onwards: word kk of
// them holds dims 4kk + 0..3 of its quarter, i.e. a0/a2 (token row) and a1/a3 (token row + 8).
template <int HEAD_SIZE>
__device__ __forceinline__ void mma_fp8_keys(float (&s)[4], const unsigned char* keys,
                                             const uint32_t (&q)[HEAD_SIZE / 16][2], int row,
                                             int col) {
  constexpr int kVecs = HEAD_SIZE / 64;  // 16-byte vectors in a quarter row
  uint4 k[2][kVecs];
#pragma unroll
  for (int t = 0; t < 2; ++t)
#pragma unroll
    for (int v = 0; v < kVecs; ++v)
      k[t][v] = *reinterpret_cast<const uint4*>(keys + swizzled<HEAD_SIZE>(row + 8 * t,
                                                                           col * kVecs + v));
#pragma unroll
  for (int kk = 0; kk < HEAD_SIZE / 16; ++kk) {
    const uint32_t w0 = word_of(k[0][kk / 4], kk % 4), w1 = word_of(k[1][kk / 4], kk % 4);
    const uint32_t a[4] = {fp8x2_to_half2<false>(w0), fp8x2_to_half2<false>(w1),
                           fp8x2_to_half2<true>(w0), fp8x2_to_half2<true>(w1)};
    mma_16x8x16<fp16_t>(s, a, q[kk]);
  }
}

// p.v for one chunk of FP8 values: acc[i2] += V^T p for each 16-dim tile. Lane (row, col) reads
// bytes row * HEAD_SIZE / 8 onwards of tokens 2col, 2col + 1, 2col + 8, 2col + 9; tile i2's
// rows row and row + 8 are dims 2i2 and 2i2 + 1 of them, interleaved token by token into pairs.
template <int HEAD_SIZE>
__device__ __forceinline__ void mma_fp8_values(float (&acc)[HEAD_SIZE / 16][4],
                                               const unsigned char* values, const uint32_t (&b)[2],
                                               int row, int col) {
  constexpr int kBytes = HEAD_SIZE / 8;  // 16 or 8
  uint32_t v[4][kBytes / 4];
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const int token = 2 * col + (t & 1) + 8 * (t >> 1);
    const unsigned char* at =
        values + swizzled<HEAD_SIZE>(token, row * kBytes / 16) + (row * kBytes) % 16;
    if constexpr (kBytes == 16) {
      const uint4 x = *reinterpret_cast<const uint4*>(at);
      v[t][0] = x.x, v[t][1] = x.y, v[t][2] = x.z, v[t][3] = x.w;
    } else {
      const uint2 x = *reinterpret_cast<const uint2*>(at);
      v[t][0] = x.x, v[t][1] = x.y;
    }
  }
#pragma unroll
  for (int i2 = 0; i2 < HEAD_SIZE / 16; ++i2) {
    // Bytes (2i2 of token a, of token b, 2i2 + 1 of a, of b) of the word holding dims 2i2, 2i2 + 1.
    const uint32_t sel = i2 % 2 ? 0x7362u : 0x5140u;
    const uint32_t lo = __byte_perm(v[0][i2 / 2], v[1][i2 / 2], sel);
    const uint32_t hi = __byte_perm(v[2][i2 / 2], v[3][i2 / 2], sel);
    const uint32_t a[4] = {fp8x2_to_half2<false>(lo), fp8x2_to_half2<true>(lo),
                           fp8x2_to_half2<false>(hi), fp8x2_to_half2<true>(hi)};
    mma_16x8x16<fp16_t>(acc[i2], a, b);
  }
}
#endif  // IE_HAS_FP8

}  // namespace ie::gpu
#endif  // IE_WARP_MMA
