// Decode attention over the paged KV cache (cache layout [num_blocks, block_size, num_kv_heads,
// head_size]), written to run at memory bandwidth:
//  * one thread block per (KV head, sequence[, partition]) reads each K/V row once for up to QPB
//    query heads of that KV head's group (grouped- and multi-query attention);
//  * every global K/V access is a 16-byte vector; a warp works on chunks of 16 tokens, which never
//    straddle a cache block because block and partition sizes are multiples of 16;
//  * phase 1 (q.k): 8 lanes share a token's row, their partial dot products meet through warp
//    shuffles (fp16 through the packed half2 FMA); logits go to shared memory;
//  * softmax over the block; phase 2 (p.v): a token's row is spread over up to a warp of lanes, so
//    each lane accumulates few output values; partials meet through shuffles and shared memory.
// v1 covers the whole context in one block (logits for the whole context in shared memory); v2
// gives each block one partition and a reduce kernel merges the partitions by max logit and sum.
#pragma once

#include "dtype.cuh"

namespace ie::gpu {

constexpr int kAttnWarps = 4;
constexpr int kAttnThreads = kAttnWarps * WARP_SIZE;
constexpr int kChunkTokens = 16;  // a warp's unit of work
constexpr int kQkLanes = 8;       // lanes sharing one token's key row in phase 1

constexpr int next_pow2(int x) { return x <= 1 ? 1 : 2 * next_pow2((x + 1) / 2); }

// Per (storage type, head size): how the phases spread a head row over lanes.
template <typename T, int HEAD_SIZE>
struct AttnShape {
  static constexpr int kVecs = HEAD_SIZE / kVec<T>;                        // 16-byte vectors per row
  static constexpr int kQkVecs = (kVecs + kQkLanes - 1) / kQkLanes;         // per lane, phase 1
  static constexpr int kQkGroups = WARP_SIZE / kQkLanes;                    // tokens per warp step
  static constexpr int kPvLanes = next_pow2(kVecs) < WARP_SIZE ? next_pow2(kVecs) : WARP_SIZE;
  static constexpr int kPvVecs = (kVecs + kPvLanes - 1) / kPvLanes;         // per lane, phase 2
  static constexpr int kPvGroups = WARP_SIZE / kPvLanes;
  // Query heads per block: the queries live in registers, at most 16 vectors per lane.
  static constexpr int kMaxQueries = 16 / kQkVecs < 8 ? 16 / kQkVecs : 8;
  static_assert(HEAD_SIZE % kVec<T> == 0, "head size must be a whole number of 16-byte vectors");
};

// q.k over one 16-byte vector. fp16 multiplies and adds pairs with the packed FMA (four products
// per lane before widening; q is pre-scaled so the partial sums stay small); others use float.
template <typename T>
__device__ __forceinline__ float dot16(const uint4& q, const uint4& k) {
  float a[kVec<T>], b[kVec<T>];
  unpack<T>(q, a);
  unpack<T>(k, b);
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) sum = fmaf(a[i], b[i], sum);
  return sum;
}

template <>
__device__ __forceinline__ float dot16<fp16_t>(const uint4& q, const uint4& k) {
  uint32_t acc = fma_f16x2(q.x, k.x, 0u);
  acc = fma_f16x2(q.y, k.y, acc);
  acc = fma_f16x2(q.z, k.z, acc);
  acc = fma_f16x2(q.w, k.w, acc);
  const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&acc));
  return f.x + f.y;
}

template <typename T>
__device__ __forceinline__ uint4 load16(const T* ptr) {
  return *reinterpret_cast<const uint4*>(ptr);
}

// What one thread block of either decode kernel works on, from its index: sequence `seq`, query
// heads [head0, head0 + queries) of KV head `kv_head`, and the tokens [start, end) of partition
// `part` (v1: the whole context). `skip`: a v2 partition past the context (the reduce kernel
// skips it too).
struct DecodeBlock {
  int seq, part, kv_head, head0, seq_len, start, end, num_chunks;
  bool skip;
  const int* table;  // the sequence's block table row

  __device__ DecodeBlock(const int* seq_lens, const int* block_tables, int num_heads,
                         int num_kv_heads, int queries, int max_blocks, int partition_size) {
    seq = blockIdx.y;
    part = blockIdx.z;
    const int group = num_heads / num_kv_heads, blocks_per_kv_head = group / queries;
    kv_head = blockIdx.x / blocks_per_kv_head;
    head0 = kv_head * group + (blockIdx.x % blocks_per_kv_head) * queries;
    seq_len = seq_lens[seq];
    start = part * partition_size;
    skip = partition_size > 0 && start >= seq_len;
    end = partition_size > 0 ? min(start + partition_size, seq_len) : seq_len;
    num_chunks = (end - start + kChunkTokens - 1) / kChunkTokens;
    table = block_tables + static_cast<int64_t>(seq) * max_blocks;
  }
};

// Thread blocks one SM must hold at once. Left alone, nvcc gives the 16-bit, head size <= 128,
// up to 4 query-head instances 100-142 registers a thread: 3 blocks per SM on sm_90 for
// Llama-3's shape; they fit 4 blocks in 128 registers without spilling. Larger instances would
// spill, so they keep the compiler's choice (1: no constraint). -DIE_ATTN_RESIDENT_BLOCKS=N
// overrides it, to measure.
#ifndef IE_ATTN_RESIDENT_BLOCKS
#define IE_ATTN_RESIDENT_BLOCKS 4
#endif
template <typename T, int HEAD_SIZE, int QPB>
constexpr int attn_resident_blocks() {
  return sizeof(T) == 2 && HEAD_SIZE <= 128 && QPB <= 4 ? IE_ATTN_RESIDENT_BLOCKS : 1;
}

template <typename T, int HEAD_SIZE, int QPB>
__global__ IE_LAUNCH_BOUNDS_RESIDENT(kAttnThreads, (attn_resident_blocks<T, HEAD_SIZE, QPB>()))
void paged_attention_kernel(
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
    int logits_stride, int64_t query_stride) {
  using S = AttnShape<T, HEAD_SIZE>;
  constexpr int V = kVec<T>;
  extern __shared__ float smem[];  // logits [QPB, logits_stride]; then output partials
  __shared__ float scratch[kAttnWarps];

  const DecodeBlock work(seq_lens, block_tables, num_heads, num_kv_heads, QPB, max_blocks,
                         partition_size);
  if (work.skip) return;
  const int seq = work.seq, part = work.part, kv_head = work.kv_head, head0 = work.head0;
  const int seq_len = work.seq_len, start = work.start, end = work.end;
  const int num_chunks = work.num_chunks;
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  const int* table = work.table;
  const int64_t row_stride = static_cast<int64_t>(num_kv_heads) * HEAD_SIZE;
  const int64_t block_stride = row_stride * block_size;
  // The first row of a chunk; its tokens follow at row_stride.
  auto chunk_rows = [&](const T* cache, int chunk_start) {
    return cache + table[chunk_start / block_size] * block_stride +
           (chunk_start % block_size) * row_stride + kv_head * HEAD_SIZE;
  };

  // Phase 1: logits. Lane (group g, index l) reads vectors l, l + 8, ... of token g of each step.
  const int qk_group = lane / kQkLanes, qk_lane = lane % kQkLanes;
  uint4 q[QPB][S::kQkVecs];
#pragma unroll
  for (int qi = 0; qi < QPB; ++qi) {
    const T* q_row = query + seq * query_stride + (head0 + qi) * HEAD_SIZE;
#pragma unroll
    for (int i = 0; i < S::kQkVecs; ++i) {
      const int j = qk_lane + i * kQkLanes;
      float f[V] = {};
      if (j < S::kVecs) load_floats<T, V>(q_row + j * V, f);
#pragma unroll
      for (int e = 0; e < V; ++e) f[e] *= scale;
      q[qi][i] = pack<T>(f);
    }
  }
  float* logits = smem;
  float thread_max[QPB];
#pragma unroll
  for (int qi = 0; qi < QPB; ++qi) thread_max[qi] = -INFINITY;
  for (int c = warp; c < num_chunks; c += kAttnWarps) {
    const int chunk_start = start + c * kChunkTokens;
    const T* rows = chunk_rows(key_cache, chunk_start);
    constexpr int kSteps = kChunkTokens / S::kQkGroups;
    uint4 k[kSteps][S::kQkVecs];  // all loads of the chunk in flight before any math
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int t = s * S::kQkGroups + qk_group;
#pragma unroll
      for (int i = 0; i < S::kQkVecs; ++i) {
        const int j = qk_lane + i * kQkLanes;
        k[s][i] = chunk_start + t < end && j < S::kVecs ? load16(rows + t * row_stride + j * V)
                                                        : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int t = s * S::kQkGroups + qk_group;
      float qk[QPB];
#pragma unroll
      for (int qi = 0; qi < QPB; ++qi) {
        qk[qi] = 0.f;
#pragma unroll
        for (int i = 0; i < S::kQkVecs; ++i) qk[qi] += dot16<T>(q[qi][i], k[s][i]);
#pragma unroll
        for (int mask = kQkLanes / 2; mask > 0; mask /= 2) qk[qi] += shfl_xor(qk[qi], mask);
      }
      const int token = chunk_start + t;
      if (qk_lane == 0 && token < end) {
#pragma unroll
        for (int qi = 0; qi < QPB; ++qi) {
          if (alibi_slopes != nullptr) qk[qi] += alibi_slopes[head0 + qi] * (token - seq_len + 1);
          logits[qi * logits_stride + token - start] = qk[qi];
          thread_max[qi] = fmaxf(thread_max[qi], qk[qi]);
        }
      }
    }
  }
  __syncthreads();

  // Softmax, unnormalized: the exp sums divide the output at the end.
  float max_logit[QPB], inv_sum[QPB];
#pragma unroll
  for (int qi = 0; qi < QPB; ++qi) {
    max_logit[qi] = block_reduce<kAttnThreads>(thread_max[qi], scratch, Max());
    float sum = 0.f;
    for (int i = threadIdx.x; i < end - start; i += kAttnThreads) {
      const float e = __expf(logits[qi * logits_stride + i] - max_logit[qi]);
      logits[qi * logits_stride + i] = e;
      sum += e;
    }
    sum = block_reduce<kAttnThreads>(sum, scratch, Sum());  // also publishes the exps
    inv_sum[qi] = sum > 0.f ? 1.f / sum : 0.f;
    if (partition_size > 0 && threadIdx.x == 0) {
      const int64_t idx = (static_cast<int64_t>(seq) * num_heads + head0 + qi) * gridDim.z + part;
      exp_sums[idx] = sum;
      max_logits[idx] = max_logit[qi];
    }
  }

  // Phase 2: p.v. Lane (group g, index l) accumulates vectors l, l + kPvLanes, ... of the output.
  const int pv_group = lane / S::kPvLanes, pv_lane = lane % S::kPvLanes;
  float acc[QPB][S::kPvVecs][V] = {};
  for (int c = warp; c < num_chunks; c += kAttnWarps) {
    const int chunk_start = start + c * kChunkTokens;
    const T* rows = chunk_rows(value_cache, chunk_start);
    constexpr int kSteps = kChunkTokens / S::kPvGroups;
    uint4 v[kSteps][S::kPvVecs];
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int t = s * S::kPvGroups + pv_group;
#pragma unroll
      for (int i = 0; i < S::kPvVecs; ++i) {
        const int j = pv_lane + i * S::kPvLanes;
        v[s][i] = chunk_start + t < end && j < S::kVecs ? load16(rows + t * row_stride + j * V)
                                                        : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int token = chunk_start + s * S::kPvGroups + pv_group;
      if (token >= end) continue;
#pragma unroll
      for (int i = 0; i < S::kPvVecs; ++i) {
        float vf[V];
        unpack<T>(v[s][i], vf);
#pragma unroll
        for (int qi = 0; qi < QPB; ++qi) {
          const float p = logits[qi * logits_stride + token - start];
#pragma unroll
          for (int e = 0; e < V; ++e) acc[qi][i][e] = fmaf(p, vf[e], acc[qi][i][e]);
        }
      }
    }
  }
#pragma unroll
  for (int qi = 0; qi < QPB; ++qi)
#pragma unroll
    for (int i = 0; i < S::kPvVecs; ++i)
#pragma unroll
      for (int e = 0; e < V; ++e)
#pragma unroll
        for (int mask = S::kPvLanes; mask < WARP_SIZE; mask *= 2)
          acc[qi][i][e] += shfl_xor(acc[qi][i][e], mask);

  __syncthreads();  // every warp is done with the logits: reuse the memory for the partials
  float* partial = smem;  // [kAttnWarps, QPB, HEAD_SIZE]
  if (pv_group == 0) {
#pragma unroll
    for (int qi = 0; qi < QPB; ++qi)
#pragma unroll
      for (int i = 0; i < S::kPvVecs; ++i) {
        const int j = pv_lane + i * S::kPvLanes;
        if (j >= S::kVecs) continue;
#pragma unroll
        for (int e = 0; e < V; ++e) partial[(warp * QPB + qi) * HEAD_SIZE + j * V + e] = acc[qi][i][e];
      }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < QPB * HEAD_SIZE; idx += kAttnThreads) {
    const int qi = idx / HEAD_SIZE, d = idx % HEAD_SIZE;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) sum += partial[(w * QPB + qi) * HEAD_SIZE + d];
    const int64_t row = (static_cast<int64_t>(seq) * num_heads + head0 + qi) * gridDim.z + part;
    out[row * HEAD_SIZE + d] = from_float<T>(sum * inv_sum[qi]);
  }
}

// v2: merges a (sequence, head)'s partitions, each already divided by its own exp sum, with
// weights exp_sum_p * exp(max_p - max).
template <typename T>
__global__ IE_LAUNCH_BOUNDS(kAttnThreads) void paged_attention_reduce_kernel(
    T* __restrict__ out,                 // [num_seqs, num_heads, head_size]
    const float* __restrict__ exp_sums,  // [num_seqs, num_heads, max_partitions]
    const float* __restrict__ max_logits,  // [num_seqs, num_heads, max_partitions]
    const T* __restrict__ tmp_out,       // [num_seqs, num_heads, max_partitions, head_size]
    const int* __restrict__ seq_lens,    // [num_seqs]
    int head_size, int partition_size, int max_partitions) {
  extern __shared__ float weights[];  // [max_partitions]
  __shared__ float scratch[kAttnWarps];
  const int64_t row = static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x;
  const int parts = (seq_lens[blockIdx.y] + partition_size - 1) / partition_size;
  const float* maxes = max_logits + row * max_partitions;
  float m = -INFINITY;
  for (int p = threadIdx.x; p < parts; p += kAttnThreads) m = fmaxf(m, maxes[p]);
  m = block_reduce<kAttnThreads>(m, scratch, Max());
  float total = 0.f;
  for (int p = threadIdx.x; p < parts; p += kAttnThreads) {
    weights[p] = exp_sums[row * max_partitions + p] * __expf(maxes[p] - m);
    total += weights[p];
  }
  total = block_reduce<kAttnThreads>(total, scratch, Sum());  // also publishes the weights
  const float inv = total > 0.f ? 1.f / total : 0.f;
  const T* partials = tmp_out + row * max_partitions * head_size;
  for (int d = threadIdx.x; d < head_size; d += kAttnThreads) {
    float sum = 0.f;
    for (int p = 0; p < parts; ++p) sum = fmaf(weights[p], to_float(partials[p * head_size + d]), sum);
    out[row * head_size + d] = from_float<T>(sum * inv);
  }
}

}  // namespace ie::gpu
