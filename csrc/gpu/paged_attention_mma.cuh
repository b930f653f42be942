// Decode attention over the paged KV cache on the tensor cores, in one pass (CUDA, sm_80+,
// 16-bit or FP8 K/V, head size 64 or 128). Same work per thread block (DecodeBlock), arguments and
// outputs as paged_attention_kernel (v1 over the whole context, or v2 partitions merged by
// paged_attention_reduce_kernel), but:
//  * q.k and p.v are warp-wide mma.m16n8k16 tiles: 16 tokens x up to 8 query heads of one KV head
//    per instruction, so a chunk of 16 tokens costs 2 x head_size / 16 matrix instructions where
//    the CUDA-core kernel spends ~70 instructions a token: that kernel, not memory, set the pace;
//  * each warp copies its chunks' K and V rows into its own ring of shared memory with cp.async,
//    whole rows per instruction, the next chunk's copies in flight while it computes this one,
//    and reads the mma fragments back with ldmatrix. Loading the fragments straight into
//    registers, as this kernel did before, held one chunk in flight per warp and made a K
//    instruction cover 64 bytes of 8 rows instead of 512 of 2: the cache streamed 6-9 % slower
//    on busy batches and 55 % slower for 16 sequences of 1200 tokens (on an H200,
//    benchmarks/kernels/probe_kv_stream.py);
//  * each warp keeps its own running max and sum (online softmax), so the block never waits on a
//    barrier until the warps merge at the end; no logits live in shared memory, so v1 takes any
//    context length.
// With an FP8 (e4m3) cache (FP8 = true) the rows are half as long and the mma runs in fp16 (e4m3
// converts to fp16 exactly, two values an instruction on sm_89+; bf16 queries are rounded to
// fp16, saturated). ldmatrix moves 16-bit values only, so each lane reads its fragments' bytes
// with plain 16-byte shared loads and converts them. To make those loads whole vectors, the
// head dimensions are permuted consistently: in q.k, lane column c's k values of slice kk are
// dims c * HEAD_SIZE / 4 + 4kk + 0..3 of both q and K (a dot product does not care in which
// order); in p.v, row r's outputs of tile i2 are dims r * HEAD_SIZE / 8 + 2i2 (+ 1), put back in
// place when the warps merge.
#pragma once

#include <type_traits>

#include "paged_attention.cuh"
#include "paged_attention_mma_fragments.cuh"

#if IE_WARP_MMA
namespace ie::gpu {

constexpr int kMmaMaxQueries = 8;  // the mma's n: query heads of one KV head per thread block
// Chunks in a warp's ring: one computed while the next is in flight. A block's rings take 64 KiB
// at head size 128, so shared memory, not the 4-block register bound of the launch, sets how
// many blocks an SM holds: 3 on sm_90, 2 on sm_80. Three stages measured slower (two blocks of
// 96 KiB fit an H200's SM). FP8 rows are half as long: four stages in the same bytes.
constexpr int kMmaStages = 2;
#ifndef IE_MMA_STAGES_FP8  // -DIE_MMA_STAGES_FP8=N overrides it, to measure
#define IE_MMA_STAGES_FP8 4
#endif
constexpr int kMmaStagesFp8 = IE_MMA_STAGES_FP8;
// Online softmax rescales a warp's sums and outputs only when some score exceeds the running max
// by more than this (log2 units): probabilities stay below 2^8, inside fp16 and bf16, and the
// 4 x HEAD_SIZE / 16 multiplies of a rescale leave most chunks (the max settles early).
constexpr float kRescaleSlack = 8.f;

// The instances this kernel has: 16-bit types (the mma's inputs), head size 64 or 128.
template <typename T, int HEAD_SIZE>
constexpr bool kHasMmaAttention = sizeof(T) == 2 && (HEAD_SIZE == 64 || HEAD_SIZE == 128);

template <typename T, int HEAD_SIZE, bool FP8 = false>
struct MmaAttnShape {
  static_assert(kHasMmaAttention<T, HEAD_SIZE>, "16-bit, head 64 or 128");
  using Cache = std::conditional_t<FP8, uint8_t, T>;              // a cache element's storage
  using Mma = std::conditional_t<FP8, fp16_t, T>;                 // the mma's input type
  static constexpr int kStages = FP8 ? kMmaStagesFp8 : kMmaStages;
  static constexpr int kRowBytes = HEAD_SIZE * static_cast<int>(sizeof(Cache));
  static constexpr int kRowVecs = kRowBytes / 16;                 // 16-byte vectors in a row
  static constexpr int kVecElems = 16 / static_cast<int>(sizeof(Cache));
  static constexpr int kRowsPerCopy = WARP_SIZE / kRowVecs;       // rows a warp copies at once
  static constexpr int kCopies = kChunkTokens / kRowsPerCopy;     // ... per K (or V) chunk
  static constexpr int kChunkBytes = kChunkTokens * kRowBytes;    // K (or V) rows of a chunk
  static constexpr int kStageBytes = 2 * kChunkBytes;             // K then V
  static constexpr int kWarpBytes = kStages * kStageBytes;        // a warp's ring
  static constexpr int kSlices = HEAD_SIZE / 16;  // k16 slices of q.k = m16 tiles of p.v
  static_assert(kMmaMaxQueries * HEAD_SIZE * 4 <= kWarpBytes, "the merge reuses the ring");
};

// Shared memory the kernel asks for at launch: every warp's ring.
template <typename T, int HEAD_SIZE, bool FP8 = false>
constexpr int mma_attention_shared_bytes() {
  return kAttnWarps * MmaAttnShape<T, HEAD_SIZE, FP8>::kWarpBytes;
}

template <typename T, int HEAD_SIZE, bool FP8>
__global__ IE_LAUNCH_BOUNDS_RESIDENT(kAttnThreads, IE_ATTN_RESIDENT_BLOCKS)
void paged_attention_mma_kernel(
    T* __restrict__ out,                   // [num_seqs, num_heads, gridDim.z, HEAD_SIZE]
    float* __restrict__ exp_sums,          // [num_seqs, num_heads, gridDim.z]; v2 only
    float* __restrict__ max_logits,        // [num_seqs, num_heads, gridDim.z]; v2 only
    const T* __restrict__ query,           // [num_seqs, num_heads, HEAD_SIZE], rows query_stride apart
    // [num_blocks, block_size, num_kv_heads, HEAD_SIZE] of T, or of FP8 (e4m3) bytes
    const typename MmaAttnShape<T, HEAD_SIZE, FP8>::Cache* __restrict__ key_cache,
    const typename MmaAttnShape<T, HEAD_SIZE, FP8>::Cache* __restrict__ value_cache,
    const int* __restrict__ block_tables,  // [num_seqs, max_blocks]
    const int* __restrict__ seq_lens,      // [num_seqs]
    const float* __restrict__ alibi_slopes,  // [num_heads] or nullptr
    float scale, int num_heads, int num_kv_heads, int block_size, int max_blocks,
    int partition_size,  // 0: v1, the whole context
    int64_t query_stride, int queries) {  // query heads per block, at most kMmaMaxQueries
  using S = MmaAttnShape<T, HEAD_SIZE, FP8>;
  using M = typename S::Mma;
  constexpr int kStages = S::kStages;
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(16) unsigned char rings[];  // [kAttnWarps][kStages][K, V]
  __shared__ float warp_max[kAttnWarps][kMmaMaxQueries], warp_sum[kAttnWarps][kMmaMaxQueries];

  // The block's sequence length and the cache blocks of each warp's first 32 chunks are loaded
  // together, not one after the other: a block of a short context lives a few microseconds, and
  // each load waited on in turn costs one of them. (The queries wait with the first copies.)
  const DecodeBlock work(seq_lens, block_tables, num_heads, num_kv_heads, queries, max_blocks,
                         partition_size);
  const int seq = work.seq, part = work.part, kv_head = work.kv_head, head0 = work.head0;
  const int start = work.start;
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  // The mma fragments' coordinates: `row` (PTX's groupID) is a token of the chunk (and row + 8)
  // in q.k, a query head in p.v's B; `col` pairs: query heads 2col, 2col + 1 of the accumulators.
  const int row = lane / 4, col = lane % 4;
  const int* table = work.table;
  // A cache block holds 2^block_shift chunks (block_size is a power of two, checked at launch).
  // Lane l holds the cache block of this warp's chunk 32k + l of the current window (k = 0 here,
  // clamped to the table: entries past the context are loaded, never used).
  const int block_shift = __ffs(block_size / kChunkTokens) - 1;
  const int first_chunk = start / kChunkTokens + warp;  // in the sequence, this warp's first
  int window = table[min((first_chunk + lane * kAttnWarps) >> block_shift, max_blocks - 1)];
  const int row_stride = num_kv_heads * HEAD_SIZE;  // a cache block's offsets fit an int
  const int64_t block_stride = static_cast<int64_t>(row_stride) * block_size;
  unsigned char* ring = rings + warp * S::kWarpBytes;
  const unsigned ring_addr = static_cast<unsigned>(__cvta_generic_to_shared(ring));

  // q.k's B (16 dims x 8 heads, column n = query head n): lane (row, col) holds query `row`'s
  // dims 16kk + 2col, + 1 and 16kk + 8 + 2col, + 1 of slice kk (FP8: dims col * HEAD_SIZE / 4 +
  // 4kk + 0, 1 and + 2, 3); heads past `queries` are zeros. Loaded here, converted to the mma's
  // type only once the first chunks' copies are issued, so those loads wait together.
  uint32_t q[S::kSlices][2];
  // A v2 partition past the context returns without them (the compiler would otherwise load
  // them ahead of the test, and such a block, common in a graph-wide v2 grid, would wait for them).
  const bool loads_query = row < queries && !work.skip;
  const uint32_t* q_row = reinterpret_cast<const uint32_t*>(
      query + seq * query_stride + static_cast<int64_t>(head0 + min(row, queries - 1)) * HEAD_SIZE);
#pragma unroll
  for (int kk = 0; kk < S::kSlices; ++kk) {
    const int pair0 = FP8 ? col * (HEAD_SIZE / 8) + 2 * kk : kk * 8 + col;
    const int pair1 = FP8 ? pair0 + 1 : pair0 + 4;
    q[kk][0] = loads_query ? q_row[pair0] : 0u;
    q[kk][1] = loads_query ? q_row[pair1] : 0u;
  }
  float slope[2] = {0.f, 0.f};  // ALiBi, in the log2 units of the scores
#pragma unroll
  for (int j = 0; j < 2; ++j)
    if (alibi_slopes != nullptr && 2 * col + j < queries)
      slope[j] = alibi_slopes[head0 + 2 * col + j] * kLog2e;
  const float qk_scale = scale * kLog2e;  // exp2 instead of exp
  if (work.skip) return;  // a v2 partition past the context
  const int seq_len = work.seq_len, end = work.end, num_chunks = work.num_chunks;

  // This warp's chunks are c = warp + i * kAttnWarps, i < mine. copy_chunk(i) puts chunk i's K
  // and V rows into stage i % kStages of the ring: lane l copies vector l % kRowVecs of rows
  // l / kRowVecs + kRowsPerCopy * n, zeros past the context (0 * garbage could be NaN in p.v;
  // those rows' addresses still lie inside the chunk's cache block).
  const int mine = num_chunks > warp ? (num_chunks - warp - 1) / kAttnWarps + 1 : 0;
  const int vec = lane % S::kRowVecs, lane_row = lane / S::kRowVecs;
  const int lane_offset = kv_head * HEAD_SIZE + lane_row * row_stride + vec * S::kVecElems;
  const int copy_stride = S::kRowsPerCopy * row_stride;
  auto copy_chunk = [&](int i) {  // called once per i, in order; commits a group either way
    if (i < mine) {
      if (i % WARP_SIZE == 0 && i > 0) {  // the next window
        const int ci = i + lane;
        window = ci < mine ? table[(first_chunk + ci * kAttnWarps) >> block_shift] : 0;
      }
      const int chunk = first_chunk + i * kAttnWarps;
      const int valid = end - chunk * kChunkTokens;
      const int64_t offset = shfl_from(window, i % WARP_SIZE) * block_stride + lane_offset +
                             (chunk & ((1 << block_shift) - 1)) * kChunkTokens * row_stride;
      const auto* k = key_cache + offset;
      const auto* v = value_cache + offset;
      const unsigned at = ring_addr + (i % kStages) * S::kStageBytes;
#pragma unroll
      for (int n = 0; n < S::kCopies; ++n) {
        const int bytes = lane_row + S::kRowsPerCopy * n < valid ? 16 : 0;
        const unsigned to = at + swizzled<S::kRowBytes>(lane_row + S::kRowsPerCopy * n, vec);
        cp_async16(to, k + n * copy_stride, bytes);
        cp_async16(to + S::kChunkBytes, v + n * copy_stride, bytes);
      }
    }
    cp_async_commit();
  };
  // ldmatrix row addresses. q.k's A (K: 16 tokens x 16 dims of slice kk): tiles (tokens 0-7 |
  // 8-15) x (dims 0-7 | 8-15), lane l addressing token l % 8 + 8 ((l / 8) % 2), vector 2kk + l / 16.
  // p.v's A (V^T: 16 dims of tile i2 x 16 tokens) from V's rows transposed: tiles (dims 0-7 |
  // 8-15) x (tokens 0-7 | 8-15), lane l addressing token l % 8 + 8 (l / 16), vector 2i2 + (l / 8) % 2.
  const int k_token = lane % 8 + 8 * ((lane / 8) % 2), k_vec = lane / 16;
  const int v_token = lane % 8 + 8 * (lane / 16), v_vec = (lane / 8) % 2;

  float run_max[2] = {-INFINITY, -INFINITY}, run_sum[2] = {0.f, 0.f};  // heads 2col, 2col + 1
  float acc[S::kSlices][4] = {};  // p.v's D tiles: dims 16i2 + row (+ 8) x heads 2col (+ 1)
  // p.v's B (16 tokens x 8 heads): lane (row, col) needs head `row` at tokens 2col, 2col + 1 (and
  // + 8), whose probabilities lanes (2col, row / 2) and (2col + 1, row / 2) hold after q.k.
  const int p_src = 8 * col + row / 2;
  const uint32_t p_half = row % 2 ? 0x7632u : 0x5410u;  // high or low 16-bit halves of a pair

#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) copy_chunk(i);
  if constexpr (!std::is_same_v<T, M>) {
#pragma unroll
    for (int kk = 0; kk < S::kSlices; ++kk) {
      q[kk][0] = to_mma_pair<T, M>(q[kk][0]);
      q[kk][1] = to_mma_pair<T, M>(q[kk][1]);
    }
  }
  for (int i = 0; i < mine; ++i) {
    copy_chunk(i + kStages - 1);  // into the stage the previous chunk left
    cp_async_wait<kStages - 1>();  // this lane's copies of chunk i have landed ...
    __syncwarp();                  // ... and the other lanes' too
    const int stage_offset = (i % kStages) * S::kStageBytes;  // chunk i's K, then its V
    const unsigned keys = ring_addr + stage_offset;
    const unsigned values = keys + S::kChunkBytes;
    const int chunk_start = (first_chunk + i * kAttnWarps) * kChunkTokens;
    const int valid = end - chunk_start;  // tokens of the chunk inside the context

    // Scores: D (16 tokens x 8 heads); this lane's are tokens row, row + 8 x heads 2col, 2col + 1.
    float s[4] = {0.f, 0.f, 0.f, 0.f};
    if constexpr (FP8) {
      mma_fp8_keys<HEAD_SIZE>(s, ring + stage_offset, q, row, col);
    } else {
#pragma unroll
      for (int kk = 0; kk < S::kSlices; ++kk) {
        uint32_t a[4];
        ldmatrix_x4(a, keys + swizzled<S::kRowBytes>(k_token, 2 * kk + k_vec));
        mma_16x8x16<T>(s, a, q[kk]);
      }
    }
    float chunk_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int token = row + (j >> 1) * 8;
      s[j] = token < valid ? s[j] * qk_scale + slope[j & 1] * (chunk_start + token - seq_len + 1)
                           : -INFINITY;
      chunk_max[j & 1] = fmaxf(chunk_max[j & 1], s[j]);
    }
    bool grows = false;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int mask = 4; mask < WARP_SIZE; mask *= 2)  // over the 8 rows: all 16 tokens
        chunk_max[j] = fmaxf(chunk_max[j], shfl_xor(chunk_max[j], mask));
      grows |= chunk_max[j] > run_max[j] + kRescaleSlack;  // always on the first chunk
    }
    if (__any_sync(0xffffffffu, grows)) {  // the whole warp rescales, or none of it
      float correction[2];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const float new_max = fmaxf(run_max[j], chunk_max[j]);  // finite: token 0 is valid
        correction[j] = exp2f(run_max[j] - new_max);
        run_max[j] = new_max;
        run_sum[j] *= correction[j];
      }
#pragma unroll
      for (int i2 = 0; i2 < S::kSlices; ++i2) {
        acc[i2][0] *= correction[0];
        acc[i2][1] *= correction[1];
        acc[i2][2] *= correction[0];
        acc[i2][3] *= correction[1];
      }
    }
    float p[4];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      p[j] = exp2f(s[j] - run_max[j]);
      p[j + 2] = exp2f(s[j + 2] - run_max[j]);
      run_sum[j] += p[j] + p[j + 2];
    }

    // Probabilities in the input type, moved from q.k's D layout to p.v's B layout.
    const uint32_t p_lo = pack2<M>(p[0], p[1]), p_hi = pack2<M>(p[2], p[3]);
    const uint32_t b[2] = {
        __byte_perm(shfl_from(p_lo, p_src), shfl_from(p_lo, p_src + 4), p_half),
        __byte_perm(shfl_from(p_hi, p_src), shfl_from(p_hi, p_src + 4), p_half)};
    // p.v: A = V^T (16 output dims x 16 tokens), V's rows read transposed.
    if constexpr (FP8) {
      mma_fp8_values<HEAD_SIZE>(acc, ring + stage_offset + S::kChunkBytes, b, row, col);
    } else {
#pragma unroll
      for (int i2 = 0; i2 < S::kSlices; ++i2) {
        uint32_t a[4];
        ldmatrix_x4_trans(a, values + swizzled<S::kRowBytes>(v_token, 2 * i2 + v_vec));
        mma_16x8x16<T>(acc[i2], a, b);
      }
    }
    __syncwarp();  // every lane is done with this stage before the next copy_chunk refills it
  }
  cp_async_wait<0>();  // the empty groups committed past the last chunk
  __syncwarp();

  // Merge the warps: each writes its heads' max, sum and unnormalized output in order, over its
  // own ring (no other warp reads it any more).
  // Warp w's output: [kMmaMaxQueries][HEAD_SIZE] floats at the start of its ring.
  auto merged = [&](int w) { return reinterpret_cast<float*>(rings + w * S::kWarpBytes); };
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
    for (int i2 = 0; i2 < S::kSlices; ++i2) {  // tile i2's rows row, row + 8: which dims
      const int d0 = FP8 ? row * (HEAD_SIZE / 8) + 2 * i2 : 16 * i2 + row;
      const int d1 = FP8 ? d0 + 1 : d0 + 8;
      merged(warp)[head * HEAD_SIZE + d0] = acc[i2][j];
      merged(warp)[head * HEAD_SIZE + d1] = acc[i2][j + 2];
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
        value += merged(w)[head * HEAD_SIZE + d] * weight;
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
