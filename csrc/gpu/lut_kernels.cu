// Look-up weights on the GPU (SqueezeLLM; layout in inference_engine/ops/quantized_linear.py):
// dequantize_lut writes W[n, k] = lut[n, q[n, k]] from qweight int32 [N, K / 8] of 4-bit
// indices, for the dense matmul of many rows. (A few rows take the Triton look-up product,
// ops/triton_wna16.py.) One thread per packed word: eight outputs, its row's table in L1.
#include "dtype.cuh"

namespace ie::gpu {
namespace {

template <typename T>
__global__ void dequantize_lut_kernel(T* __restrict out, const uint32_t* __restrict qweight,
                                      const T* __restrict lut, int64_t n, int64_t k) {
  const int64_t words = k / 8;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * words) return;
  const int64_t f = idx / words, w = idx % words;
  const uint32_t word = qweight[idx];
  const T* table = lut + f * 16;
  T values[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) values[j] = table[(word >> (4 * j)) & 0xfu];
#pragma unroll
  for (int j = 0; j < 8; ++j) out[f * k + w * 8 + j] = values[j];
}

}  // namespace

const char* launch_dequantize_lut(void* out, const void* qweight, const void* lut, int64_t n,
                                  int64_t k, DType dtype, cudaStream_t stream) {
  const int threads = 256;
  const int64_t blocks = (n * k / 8 + threads - 1) / threads;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    dequantize_lut_kernel<T><<<blocks, threads, 0, stream>>>(
        static_cast<T*>(out), static_cast<const uint32_t*>(qweight), static_cast<const T*>(lut),
        n, k);
  });
  return nullptr;
}

}  // namespace ie::gpu
