// y = x W^T (+ b) for a few rows of x (1 to 8: decode steps late in a run), on the tensor cores.
// With so few rows the product reads every weight once and does little else, so the kernel is a
// stream over W at memory bandwidth, where cuBLAS's choices read 4096-wide matrices at 66-85 % of
// it (benchmarks/kernels/benchmark_skinny_matmul.py):
//  * a thread block owns 16 output features (rows of W) and its 8 warps split K, so even a
//    4096 x 4096 matrix gives 256 blocks x 8 warps of independent loads;
//  * each warp streams 128-column windows of its 16 rows as 16-byte vectors, two windows' loads in
//    flight before any math, and multiplies them with mma.m16n8k16 (W rows as A, x^T as B: one
//    instruction per 16 columns);
//  * the warps' partial sums meet in shared memory; one pass adds the bias and writes y.
// As in paged_attention_mma.cuh, the mma's reduction dimension is permuted so that lanes load whole
// vectors: lane (row r, col c) reads vectors u * 4 + c of a window for W rows r and r + 8, and
// the same vectors of x's row r.
#include "dtype.cuh"

#if IE_WARP_MMA
namespace ie::gpu {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * WARP_SIZE;
constexpr int kWindow = 128;  // columns of K per warp step
constexpr int kVecsPerLane = kWindow / 32;  // 16-byte vectors a lane loads per W row per window

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// One window: W rows r and r + 8 (from `w`, columns already offset) and x's row r, all loads
// issued before use.
template <typename T>
struct Window {
  uint4 w_lo[kVecsPerLane], w_hi[kVecsPerLane], x[kVecsPerLane];

  __device__ void load(const T* w, int64_t k_stride, const T* x_rows, int64_t x_stride, int rows,
                       int row, int col) {
    constexpr int V = kVec<T>;
#pragma unroll
    for (int u = 0; u < kVecsPerLane; ++u) {
      const int offset = (u * 4 + col) * V;
      w_lo[u] = *reinterpret_cast<const uint4*>(w + row * k_stride + offset);
      w_hi[u] = *reinterpret_cast<const uint4*>(w + (row + 8) * k_stride + offset);
      x[u] = row < rows ? *reinterpret_cast<const uint4*>(x_rows + row * x_stride + offset)
                        : make_uint4(0, 0, 0, 0);
    }
  }

  __device__ void multiply(float (&acc)[4]) const {
#pragma unroll
    for (int kk = 0; kk < kWindow / 16; ++kk) {
      const int u = kk / 2, i = (kk % 2) * 2;
      const uint32_t a[4] = {word_of(w_lo[u], i), word_of(w_hi[u], i), word_of(w_lo[u], i + 1),
                             word_of(w_hi[u], i + 1)};
      const uint32_t b[2] = {word_of(x[u], i), word_of(x[u], i + 1)};
      mma_16x8x16<T>(acc, a, b);
    }
  }
};

// Two windows in flight take ~116 registers a thread: two blocks per SM fit. (A second tile of
// 8 rows, for 9-16, needed over 128 and read x as often as W: slower than cuBLAS on an H100.)
template <typename T>
__global__ IE_LAUNCH_BOUNDS_RESIDENT(kThreads, 2) void skinny_matmul_kernel(
    T* __restrict__ out,         // [rows, n]
    const T* __restrict__ x,     // [rows, k], rows x_stride apart
    const T* __restrict__ w,     // [n, k]
    const T* __restrict__ bias,  // [n] or nullptr
    int rows, int n, int k, int64_t x_stride) {
  __shared__ float partial[kWarps][16][8];  // [warp][feature][token]
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  const int row = lane / 4, col = lane % 4;  // the mma fragments' groupID, thread in group
  const int feature0 = blockIdx.x * 16;
  const T* w_rows = w + static_cast<int64_t>(feature0) * k;
  const int windows = k / kWindow;

  // The D tile: features row and row + 8 x tokens 2col, 2col + 1.
  float acc[4] = {};
  Window<T> cur, next;
  int win = warp;
  if (win < windows) cur.load(w_rows + win * kWindow, k, x + win * kWindow, x_stride, rows, row, col);
  for (; win < windows; win += kWarps) {
    const int ahead = win + kWarps;
    if (ahead < windows) {
      next.load(w_rows + ahead * kWindow, k, x + ahead * kWindow, x_stride, rows, row, col);
    }
    cur.multiply(acc);
    cur = next;
  }

  partial[warp][row][2 * col] = acc[0];
  partial[warp][row][2 * col + 1] = acc[1];
  partial[warp][row + 8][2 * col] = acc[2];
  partial[warp][row + 8][2 * col + 1] = acc[3];
  __syncthreads();
  for (int idx = threadIdx.x; idx < 16 * 8; idx += kThreads) {
    const int feature = idx % 16, token = idx / 16;
    if (token >= rows) continue;
    float sum = bias != nullptr ? to_float(bias[feature0 + feature]) : 0.f;
#pragma unroll
    for (int v = 0; v < kWarps; ++v) sum += partial[v][feature][token];
    out[static_cast<int64_t>(token) * n + feature0 + feature] = from_float<T>(sum);
  }
}

}  // namespace

const char* launch_skinny_matmul(void* out, const void* x, const void* w, const void* bias,
                                 int rows, int n, int k, int64_t x_stride, DType dtype,
                                 cudaStream_t stream) {
  if (dtype == DType::kFloat32) return "skinny_matmul: fp16 or bf16 only";
  if (rows < 1 || rows > 8) return "skinny_matmul: 1 to 8 rows";
  if (n % 16 != 0 || k % kWindow != 0) return "skinny_matmul: n must be a multiple of 16, k of 128";
  if (!warp_mma_supported()) return "skinny_matmul: needs sm_80 or later";
  const char* error = nullptr;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (sizeof(T) == 2) {
      skinny_matmul_kernel<T><<<n / 16, kThreads, 0, stream>>>(
          static_cast<T*>(out), static_cast<const T*>(x), static_cast<const T*>(w),
          static_cast<const T*>(bias), rows, n, k, x_stride);
    } else {
      error = "skinny_matmul: fp16 or bf16 only";
    }
  });
  return error;
}

}  // namespace ie::gpu
#else
namespace ie::gpu {

const char* launch_skinny_matmul(void*, const void*, const void*, const void*, int, int, int,
                                 int64_t, DType, cudaStream_t) {
  return "skinny_matmul: needs the tensor cores' mma (CUDA sm_80+)";
}

}  // namespace ie::gpu
#endif
