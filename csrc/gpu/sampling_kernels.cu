// Greedy sampling in one pass over the logits: per row, the first index of the largest logit and
// that token's log-probability (-log sum exp(x - max)). The general sampler instead writes the
// rows as float32, then their log-softmax, then reads it twice (~0.2 ms a step for 192 rows of
// Llama-3's 128256-token vocabulary, where one read of the bf16 logits takes ~20 us).
#include <climits>

#include "dtype.cuh"

namespace ie::gpu {
namespace {

constexpr int kThreads = 1024;

// A running (largest logit, first index of it, sum of exp(logit - largest)), starting from
// {-inf, INT_MAX, 0}. NaN logits are skipped; an all -inf row keeps index INT_MAX (read as 0)
// and a sum of 0.
// (No default member initializers: the type also lives in shared memory.)
struct ArgmaxSum {
  float max;
  int index;
  float sum;

  // Indices come in increasing order within one thread: a tie keeps the earlier one.
  __device__ void add(float x, int i) {
    if (x > max) {
      sum = sum * expf(max - x) + 1.f;
      max = x;
      index = i;
    } else if (x > -INFINITY) {
      sum += expf(x - max);
    }
  }

  // Keeps the winner (the larger max, or the earlier index of an equal one); rescales the
  // other's sum into its own.
  __device__ void merge(ArgmaxSum other) {
    if (other.max > max || (other.max == max && other.index < index)) {
      const ArgmaxSum mine = *this;
      *this = other;
      other = mine;
    }
    if (other.max > -INFINITY) sum += other.sum * expf(other.max - max);
  }

  __device__ ArgmaxSum from_lane(int lane_mask) const {
    return {shfl_xor(max, lane_mask), shfl_xor(index, lane_mask), shfl_xor(sum, lane_mask)};
  }
};

// One block a row, N logits a thread and step (kVec<T> when rows are 16-byte aligned, else 1).
template <typename T, int N>
__global__ IE_LAUNCH_BOUNDS(kThreads) void greedy_sample_kernel(
    int64_t* __restrict__ tokens,   // [rows]
    float* __restrict__ logprobs,   // [rows]
    const T* __restrict__ logits,   // [rows, vocab], rows row_stride apart
    int vocab, int64_t row_stride) {
  __shared__ ArgmaxSum warp_results[kThreads / WARP_SIZE];
  const T* row = logits + blockIdx.x * row_stride;
  ArgmaxSum acc{-INFINITY, INT_MAX, 0.f};
  for (int i = threadIdx.x * N; i < vocab; i += kThreads * N) {
    float x[N];
    load_floats<T, N>(row + i, x);
#pragma unroll
    for (int e = 0; e < N; ++e) acc.add(x[e], i + e);
  }
#pragma unroll
  for (int mask = WARP_SIZE / 2; mask > 0; mask /= 2) acc.merge(acc.from_lane(mask));
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  if (lane == 0) warp_results[warp] = acc;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < kThreads / WARP_SIZE; ++w) acc.merge(warp_results[w]);
  tokens[blockIdx.x] = acc.index == INT_MAX ? 0 : acc.index;
  logprobs[blockIdx.x] = acc.sum > 0.f ? -logf(acc.sum) : NAN;  // all -inf: NaN, as log_softmax
}

}  // namespace

const char* launch_greedy_sample(int64_t* tokens, float* logprobs, const void* logits,
                                 int64_t rows, int vocab, int64_t row_stride, bool aligned,
                                 DType dtype, cudaStream_t stream) {
  if (rows == 0) return nullptr;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](auto kernel) {
      kernel<<<rows, kThreads, 0, stream>>>(tokens, logprobs, static_cast<const T*>(logits), vocab,
                                            row_stride);
    };
    if (aligned && vocab % kVec<T> == 0 && row_stride % kVec<T> == 0) {
      run(greedy_sample_kernel<T, kVec<T>>);
    } else {
      run(greedy_sample_kernel<T, 1>);
    }
  });
  return nullptr;
}

}  // namespace ie::gpu
