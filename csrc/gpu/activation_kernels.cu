// Gated activations: input [rows, 2 * d] holds (gate, up); out [rows, d] = act(gate) * up.
// Thread blocks per row: enough for one 16-byte access per thread (when d allows), so a decode
// batch of a few rows still spreads over many SMs instead of looping on a few.
#include "dtype.cuh"

namespace ie::gpu {
namespace {

constexpr int kThreads = 256;

struct Silu {
  __device__ static float apply(float x) { return x / (1.f + __expf(-x)); }
};
struct Gelu {
  __device__ static float apply(float x) { return 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); }
};
struct GeluTanh {
  __device__ static float apply(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
  }
};

template <typename Act, typename T, int N>
__global__ IE_LAUNCH_BOUNDS(kThreads) void act_and_mul_kernel(
    T* __restrict__ out,          // [rows, d]
    const T* __restrict__ input,  // [rows, 2 * d]
    int d) {
  const T* gate = input + static_cast<int64_t>(blockIdx.x) * 2 * d;
  const T* up = gate + d;
  T* o = out + static_cast<int64_t>(blockIdx.x) * d;
  for (int i = (blockIdx.y * kThreads + threadIdx.x) * N; i < d; i += gridDim.y * kThreads * N) {
    float g[N], u[N];
    load_floats<T, N>(gate + i, g);
    load_floats<T, N>(up + i, u);
#pragma unroll
    for (int e = 0; e < N; ++e) g[e] = Act::apply(g[e]) * u[e];
    store_floats<T, N>(o + i, g);
  }
}

template <typename Act, typename T>
void launch(void* out, const void* input, int64_t rows, int d, cudaStream_t stream) {
  auto run = [&](auto kernel, int n) {
    const dim3 grid(rows, (d + kThreads * n - 1) / (kThreads * n));  // rows <= 2^31 - 1
    kernel<<<grid, kThreads, 0, stream>>>(static_cast<T*>(out), static_cast<const T*>(input), d);
  };
  if (d % kVec<T> == 0) {
    run(act_and_mul_kernel<Act, T, kVec<T>>, kVec<T>);
  } else {
    run(act_and_mul_kernel<Act, T, 1>, 1);
  }
}

}  // namespace

const char* launch_act_and_mul(Activation act, void* out, const void* input, int64_t rows, int d,
                               DType dtype, cudaStream_t stream) {
  if (rows == 0) return nullptr;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    switch (act) {
      case Activation::kSilu: launch<Silu, T>(out, input, rows, d, stream); break;
      case Activation::kGelu: launch<Gelu, T>(out, input, rows, d, stream); break;
      case Activation::kGeluTanh: launch<GeluTanh, T>(out, input, rows, d, stream); break;
    }
  });
  return nullptr;
}

}  // namespace ie::gpu
