// Look-up weights on the GPU (SqueezeLLM; layout in inference_engine/ops/quantized_linear.py):
// W[n, k] = lut[n, q[n, k]] with qweight int32 [N, K / 8] of 4-bit indices.
//
// lut_matmul, for 1 to 16 rows of x, is packed_matmul.cuh's stream over W with the block's 16
// tables in shared memory: each pair of values is two look-ups. dequantize_lut writes W for the
// dense matmul of many rows, one thread per packed word (eight outputs, its row's table in L1).
#include "packed_matmul.cuh"

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

#if IE_WARP_MMA
namespace ie::gpu {
namespace {

template <typename T>
struct LookupDequant {
  struct Params {
    const T* lut;
  };
  struct Shared {
    T table[16][16];  // the block's 16 rows' tables
  };
  struct Constants {};
  const Shared& shared;

  __device__ LookupDequant(const Params& p, int feature0, int, Shared& s) : shared(s) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) s.table[i / 16][i % 16] = p.lut[feature0 * 16 + i];
    __syncthreads();
  }

  __device__ void load(Constants&, int, int) const {}

  // (Constants hold nothing: the row is this lane's, row or row + 8.)
  __device__ uint32_t pair(const Constants&, uint32_t word, int shift, bool high) const {
    const int row = threadIdx.x % WARP_SIZE / 4 + (high ? 8 : 0);
    const T lo = shared.table[row][(word >> shift) & 0xfu];
    const T hi = shared.table[row][(word >> (shift + 16)) & 0xfu];
    return packed::bit_cast_<uint32_t>(typename packed::Pair<T>::type(lo, hi));
  }
};

}  // namespace

const char* launch_lut_matmul(void* out, const void* x, const void* qweight, const void* lut,
                              const void* bias, int rows, int n, int k, int64_t x_stride,
                              DType dtype, cudaStream_t stream) {
  if (dtype == DType::kFloat32) return "lut_matmul: fp16 or bf16 only";
  if (rows < 1 || rows > 16) return "lut_matmul: 1 to 16 rows";
  if (n % 16 != 0 || k % 128 != 0) return "lut_matmul: N must be a multiple of 16, K of 128";
  if (!warp_mma_supported()) return "lut_matmul: needs sm_80 or later";
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (sizeof(T) == 2) {
      const typename LookupDequant<T>::Params p{static_cast<const T*>(lut)};
      packed::launch_packed_matmul<T, 4, LookupDequant<T>>(
          static_cast<T*>(out), static_cast<const T*>(x), static_cast<const uint32_t*>(qweight), p,
          static_cast<const T*>(bias), rows, n, k, x_stride, stream);
    }
  });
  return nullptr;
}

}  // namespace ie::gpu
#else
namespace ie::gpu {

const char* launch_lut_matmul(void*, const void*, const void*, const void*, const void*, int, int,
                              int, int64_t, DType, cudaStream_t) {
  return "lut_matmul: needs the tensor cores' mma (CUDA sm_80+)";
}

}  // namespace ie::gpu
#endif
