// RMSNorm and fused residual-add + RMSNorm: one thread block per row, 16-byte accesses when the
// row length allows. Rounds where Hugging Face's LlamaRMSNorm rounds (the normalized row is cast to
// the storage type before the weight multiplies it; the residual sum is rounded before the norm).
#include "dtype.cuh"

namespace ie::gpu {
namespace {

constexpr int kThreads = 256;

// N values per thread and step: kVec<T> when hidden % kVec<T> == 0, else 1.
template <typename T, int N>
__global__ IE_LAUNCH_BOUNDS(kThreads) void rms_norm_kernel(
    T* __restrict__ out,                 // [rows, hidden]
    T* __restrict__ residual_out,        // [rows, hidden] or nullptr
    const T* __restrict__ input,         // [rows, hidden]
    const T* __restrict__ residual,      // [rows, hidden] or nullptr
    const T* __restrict__ weight,        // [hidden]
    int hidden, float eps) {
  __shared__ float scratch[kThreads / WARP_SIZE];
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * hidden;
  float sum_sq = 0.f;
  for (int i = threadIdx.x * N; i < hidden; i += kThreads * N) {
    float x[N];
    load_floats<T, N>(input + offset + i, x);
    if (residual != nullptr) {
      float r[N];
      load_floats<T, N>(residual + offset + i, r);
#pragma unroll
      for (int e = 0; e < N; ++e) x[e] = to_float(from_float<T>(x[e] + r[e]));
      store_floats<T, N>(residual_out + offset + i, x);
    }
#pragma unroll
    for (int e = 0; e < N; ++e) sum_sq += x[e] * x[e];
  }
  const float rinv = rsqrtf(block_reduce<kThreads>(sum_sq, scratch, Sum()) / hidden + eps);
  // The same thread wrote residual_out[i] above, so reading it back needs no barrier.
  const T* normed = residual != nullptr ? residual_out : input;
  for (int i = threadIdx.x * N; i < hidden; i += kThreads * N) {
    float x[N], w[N];
    load_floats<T, N>(normed + offset + i, x);
    load_floats<T, N>(weight + i, w);
#pragma unroll
    for (int e = 0; e < N; ++e) x[e] = to_float(from_float<T>(x[e] * rinv)) * w[e];
    store_floats<T, N>(out + offset + i, x);
  }
}

template <typename T>
void launch(void* out, void* residual_out, const void* input, const void* residual,
            const void* weight, int64_t rows, int hidden, float eps, cudaStream_t stream) {
  auto args = [&](auto kernel) {
    kernel<<<rows, kThreads, 0, stream>>>(static_cast<T*>(out), static_cast<T*>(residual_out),
                                         static_cast<const T*>(input), static_cast<const T*>(residual),
                                         static_cast<const T*>(weight), hidden, eps);
  };
  if (hidden % kVec<T> == 0) {
    args(rms_norm_kernel<T, kVec<T>>);
  } else {
    args(rms_norm_kernel<T, 1>);
  }
}

}  // namespace

const char* launch_rms_norm(void* out, void* residual_out, const void* input, const void* residual,
                            const void* weight, int64_t rows, int hidden, float eps, DType dtype,
                            cudaStream_t stream) {
  if (rows == 0) return nullptr;
  dispatch_dtype(dtype, [&](auto tag) {
    launch<decltype(tag)>(out, residual_out, input, residual, weight, rows, hidden, eps, stream);
  });
  return nullptr;
}

}  // namespace ie::gpu
