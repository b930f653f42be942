// Decode attention over the paged KV cache on the tensor cores, in one pass (CUDA, sm_80+,
// 16-bit K/V, head size 64 or 128). Same work per thread block (DecodeBlock), arguments and
// outputs as paged_attention_kernel (v1 over the whole context, or v2 partitions merged by
// paged_attention_reduce_kernel), but:
//  * q.k and p.v are warp-wide mma.m16n8k16 tiles: 16 tokens x up to 8 query heads of one KV head
//    per instruction, so a chunk of 16 tokens costs 2 x head_size / 16 matrix instructions where
//    the CUDA-core kernel spends ~70 instructions a token: that kernel, not memory, set the pace;
//  * each warp streams its chunks' K and V rows together (one memory round trip per chunk, not
//    two) and keeps its own running max and sum (online softmax), so the block never waits on a
//    barrier until the warps merge at the end; no logits live in shared memory, so v1 takes any
//    context length.
// The reduction dimension of an mma may be permuted freely as long as both operands agree, and
// its rows freely as long as the output is written back in order: lanes load K, V and q as whole
// 16-byte vectors, chosen so that the fragments need at most a byte permute (see the loads).
#pragma once

#include "paged_attention.cuh"

#if IE_WARP_MMA
namespace ie::gpu {

constexpr int kMmaMaxQueries = 8;  // the mma's n: query heads of one KV head per thread block

// The instances this kernel has: 16-bit types (the mma's inputs), head size 64 or 128 (whole
// 16-byte vectors per lane in both loads).
template <typename T, int HEAD_SIZE>
constexpr bool kHasMmaAttention = sizeof(T) == 2 && (HEAD_SIZE == 64 || HEAD_SIZE == 128);

template <typename T, int HEAD_SIZE>
struct MmaAttnShape {
  static_assert(kHasMmaAttention<T, HEAD_SIZE>, "16-bit, head 64 or 128");
  static constexpr int kKeyVecs = HEAD_SIZE / 32;   // 16-byte vectors a lane loads per key row
  static constexpr int kValueVecs = HEAD_SIZE / 64;  // ... per value row
  static constexpr int kSlices = HEAD_SIZE / 16;    // k16 slices of q.k = m16 tiles of p.v
};

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  T pair[2] = {from_float<T>(lo), from_float<T>(hi)};
  return *reinterpret_cast<const uint32_t*>(pair);
}

template <typename T, int HEAD_SIZE>
__global__ IE_LAUNCH_BOUNDS_RESIDENT(kAttnThreads, IE_ATTN_RESIDENT_BLOCKS)
void paged_attention_mma_kernel(
    T* __restrict__ out,                   // [num_seqs, num_heads, gridDim.z, HEAD_SIZE]
    float* __restrict__ exp_sums,          // [num_seqs, num_heads, gridDim.z]; v2 only
    float* __restrict__ max_logits,        // [num_seqs, num_heads, gridDim.z]; v2 only
    const T* __restrict__ query,           // [num_seqs, num_heads, HEAD_SIZE], rows query_stride apart
    const T* __restrict__ key_cache,       // [num_blocks, block_size, num_kv_heads, HEAD_SIZE]
    const T* __restrict__ value_cache,     // [num_blocks, block_size, num_kv_heads, HEAD_SIZE]
    const int* __restrict__ block_tables,  // [num_seqs, max_blocks]
    const int* __restrict__ seq_lens,      // [num_seqs]
    const float* __restrict__ alibi_slopes,  // [num_heads] or nullptr
    float scale, int num_heads, int num_kv_heads, int block_size, int max_blocks,
    int partition_size,  // 0: v1, the whole context
    int64_t query_stride, int queries) {  // query heads per block, at most kMmaMaxQueries
  using S = MmaAttnShape<T, HEAD_SIZE>;
  constexpr int V = kVec<T>;
  constexpr float kLog2e = 1.4426950408889634f;
  __shared__ float merged[kAttnWarps][kMmaMaxQueries][HEAD_SIZE];
  __shared__ float warp_max[kAttnWarps][kMmaMaxQueries], warp_sum[kAttnWarps][kMmaMaxQueries];

  const DecodeBlock work(seq_lens, block_tables, num_heads, num_kv_heads, queries, max_blocks,
                         partition_size);
  if (work.skip) return;
  const int seq = work.seq, part = work.part, kv_head = work.kv_head, head0 = work.head0;
  const int seq_len = work.seq_len, start = work.start, end = work.end;
  const int num_chunks = work.num_chunks;
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  // The mma fragments' coordinates: `row` (PTX's groupID) is a token of the chunk (and row + 8)
  // in q.k, a query head in p.v's B; `col` pairs: query heads 2col, 2col + 1 of the accumulators.
  const int row = lane / 4, col = lane % 4;
  const int* table = work.table;
  const int64_t row_stride = static_cast<int64_t>(num_kv_heads) * HEAD_SIZE;
  const int64_t block_stride = row_stride * block_size;

  // q.k's B (16 x 8, column n = query head n): lane (row, col) holds query `row`'s vectors
  // u * 4 + col, the ones its K loads read (below); heads past `queries` are zero columns.
  uint4 q[S::kKeyVecs];
  const T* q_row =
      query + seq * query_stride + static_cast<int64_t>(head0 + min(row, queries - 1)) * HEAD_SIZE;
#pragma unroll
  for (int u = 0; u < S::kKeyVecs; ++u)
    q[u] = row < queries ? load16(q_row + (u * 4 + col) * V) : make_uint4(0, 0, 0, 0);
  float slope[2] = {0.f, 0.f};  // ALiBi, in the log2 units of the scores
#pragma unroll
  for (int j = 0; j < 2; ++j)
    if (alibi_slopes != nullptr && 2 * col + j < queries)
      slope[j] = alibi_slopes[head0 + 2 * col + j] * kLog2e;
  const float qk_scale = scale * kLog2e;  // exp2 instead of exp

  float run_max[2] = {-INFINITY, -INFINITY}, run_sum[2] = {0.f, 0.f};  // heads 2col, 2col + 1
  float acc[S::kSlices][4] = {};  // p.v's D tiles: output dims (see `out_dim`) x heads
  // p.v's B (16 tokens x 8 heads): lane (row, col) needs head `row` at tokens 2col, 2col + 1 (and
  // + 8), whose probabilities lanes (2col, row / 2) and (2col + 1, row / 2) hold after q.k.
  const int p_src = 8 * col + row / 2;
  const uint32_t p_half = row % 2 ? 0x7632u : 0x5410u;  // high or low 16-bit halves of a pair

  int chunk_block = 0;  // lane i: the cache block of this warp's chunk i (of a window of 32)
  for (int c = warp, i = 0; c < num_chunks; c += kAttnWarps, ++i) {
    if (i % WARP_SIZE == 0) {  // the next 32 chunks' table entries in one load
      const int ci = c + lane * kAttnWarps;
      chunk_block = ci < num_chunks ? table[(start + ci * kChunkTokens) / block_size] : 0;
    }
    const int chunk_start = start + c * kChunkTokens;
    const int valid = end - chunk_start;  // tokens of the chunk inside the context
    const int64_t base = shfl_from(chunk_block, i % WARP_SIZE) * block_stride +
                         (chunk_start % block_size) * row_stride + kv_head * HEAD_SIZE;
    const T* keys = key_cache + base;
    const T* values = value_cache + base;

    // Every load of the chunk in flight before any math. K: lanes (row, col) read vectors
    // u * 4 + col of tokens row and row + 8 (a warp instruction covers 64 whole bytes of 8 rows).
    // V: vectors u * 8 + row of tokens 2col, 2col + 1, 2col + 8, 2col + 9 (128 bytes of 4 rows).
    uint4 k_lo[S::kKeyVecs], k_hi[S::kKeyVecs], v[4][S::kValueVecs];
#pragma unroll
    for (int u = 0; u < S::kKeyVecs; ++u) {
      const int offset = (u * 4 + col) * V;
      k_lo[u] = row < valid ? load16(keys + row * row_stride + offset) : make_uint4(0, 0, 0, 0);
      k_hi[u] = row + 8 < valid ? load16(keys + (row + 8) * row_stride + offset)
                                : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const int token = 2 * col + (t & 1) + (t >> 1) * 8;
#pragma unroll
      for (int u = 0; u < S::kValueVecs; ++u)  // zeros past the end: 0 * garbage could be NaN
        v[t][u] = token < valid ? load16(values + token * row_stride + (u * 8 + row) * V)
                                : make_uint4(0, 0, 0, 0);
    }

    // Scores: D (16 tokens x 8 heads); this lane's are tokens row, row + 8 x heads 2col, 2col + 1.
    float s[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int kk = 0; kk < S::kSlices; ++kk) {
      const int u = kk / 2, w = (kk % 2) * 2;
      const uint32_t a[4] = {word(k_lo[u], w), word(k_hi[u], w), word(k_lo[u], w + 1),
                             word(k_hi[u], w + 1)};
      const uint32_t b[2] = {word(q[u], w), word(q[u], w + 1)};
      mma_16x8x16<T>(s, a, b);
    }
    float chunk_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int token = row + (j >> 1) * 8;
      s[j] = token < valid ? s[j] * qk_scale + slope[j & 1] * (chunk_start + token - seq_len + 1)
                           : -INFINITY;
      chunk_max[j & 1] = fmaxf(chunk_max[j & 1], s[j]);
    }
    float p[4], correction[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int mask = 4; mask < WARP_SIZE; mask *= 2)  // over the 8 rows: all 16 tokens
        chunk_max[j] = fmaxf(chunk_max[j], shfl_xor(chunk_max[j], mask));
      const float new_max = fmaxf(run_max[j], chunk_max[j]);  // finite: token 0 is valid
      correction[j] = exp2f(run_max[j] - new_max);
      run_max[j] = new_max;
      p[j] = exp2f(s[j] - new_max);
      p[j + 2] = exp2f(s[j + 2] - new_max);
      run_sum[j] = run_sum[j] * correction[j] + p[j] + p[j + 2];
    }
#pragma unroll
    for (int i2 = 0; i2 < S::kSlices; ++i2) {
      acc[i2][0] *= correction[0];
      acc[i2][1] *= correction[1];
      acc[i2][2] *= correction[0];
      acc[i2][3] *= correction[1];
    }

    // Probabilities in the input type, moved from q.k's D layout to p.v's B layout.
    const uint32_t p_lo = pack2<T>(p[0], p[1]), p_hi = pack2<T>(p[2], p[3]);
    const uint32_t b[2] = {
        __byte_perm(shfl_from(p_lo, p_src), shfl_from(p_lo, p_src + 4), p_half),
        __byte_perm(shfl_from(p_hi, p_src), shfl_from(p_hi, p_src + 4), p_half)};
    // p.v: A = V^T (16 output dims x 16 tokens). Tile i's rows row and row + 8 are the two
    // halves of word i of this lane's value vectors, so a byte permute pairs two tokens' values.
#pragma unroll
    for (int i2 = 0; i2 < S::kSlices; ++i2) {
      const int u = i2 / 4, w = i2 % 4;
      const uint32_t a[4] = {
          __byte_perm(word(v[0][u], w), word(v[1][u], w), 0x5410u),
          __byte_perm(word(v[0][u], w), word(v[1][u], w), 0x7632u),
          __byte_perm(word(v[2][u], w), word(v[3][u], w), 0x5410u),
          __byte_perm(word(v[2][u], w), word(v[3][u], w), 0x7632u)};
      mma_16x8x16<T>(acc[i2], a, b);
    }
  }

  // Merge the warps: each writes its heads' max, sum and unnormalized output in order.
#pragma unroll
  for (int j = 0; j < 2; ++j) {
#pragma unroll
    for (int mask = 4; mask < WARP_SIZE; mask *= 2) run_sum[j] += shfl_xor(run_sum[j], mask);
    const int head = 2 * col + j;
    if (head >= queries) continue;
    if (row == 0) {
      warp_max[warp][head] = run_max[j];
      warp_sum[warp][head] = run_sum[j];
    }
#pragma unroll
    for (int i2 = 0; i2 < S::kSlices; ++i2) {
      // word i2 % 4 of vector (i2 / 4) * 8 + row, the lane's value vectors' order
      const int out_dim = ((i2 / 4) * 8 + row) * V + (i2 % 4) * 2;
      merged[warp][head][out_dim] = acc[i2][j];
      merged[warp][head][out_dim + 1] = acc[i2][j + 2];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < queries * HEAD_SIZE; idx += kAttnThreads) {
    const int head = idx / HEAD_SIZE, d = idx % HEAD_SIZE;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) m = fmaxf(m, warp_max[w][head]);
    float sum = 0.f, value = 0.f;
    if (m > -INFINITY) {  // else an empty context: zeros
#pragma unroll
      for (int w = 0; w < kAttnWarps; ++w) {
        const float weight = exp2f(warp_max[w][head] - m);
        sum += warp_sum[w][head] * weight;
        value += merged[w][head][d] * weight;
      }
    }
    const int64_t out_row = (static_cast<int64_t>(seq) * num_heads + head0 + head) * gridDim.z + part;
    out[out_row * HEAD_SIZE + d] = from_float<T>(sum > 0.f ? value / sum : 0.f);
    if (partition_size > 0 && d == 0) {  // the reduce kernel works in natural-log units
      exp_sums[out_row] = sum;
      max_logits[out_row] = m / kLog2e;
    }
  }
}

}  // namespace ie::gpu
#endif  // IE_WARP_MMA
