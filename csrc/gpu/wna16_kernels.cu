// Integer-weight products on the GPU (W4A16, W8A16; layout in inference_engine/ops/quantized_linear.py):
// qweight int32 [N, K / p] (p = 32 / bits values per word, lowest first), scales and zeros [N, G].
//
// wna16_matmul, for 1 to 16 rows of x (decode), is skinny_matmul_kernels.cu's stream over W with
// the weights dequantized in registers: a thread block owns 16 output features, its 8 warps split
// K in windows, each lane loads one 16-byte vector of packed values per W row per window (32
// 4-bit or 16 8-bit values: a window is 4 such vectors, 128 or 64 inputs), turns them into 16-bit
// pairs, and multiplies them with mma.m16n8k16 against x (one 8-token tile, or two for 9-16 rows).
// The dequantization is the reference's, exactly: a 4-bit value q enters the low mantissa bits
// of a 16-bit number (1024 + q in fp16, 128 + q in bf16, both exact), minus the same number built
// from the zero point gives q - z exactly, and one multiply by the scale rounds once. The pairs
// are values j and j + 4 of a word (j and j + 2 for 8 bits), which one mask extracts; x's values
// are paired the same way (byte permutes), since the mma only needs A and B to agree on k.
//
// dequantize_wna16 writes the 16-bit (or float32) weight, for the dense matmul of many rows.
#include <cstring>
#include <type_traits>

#include "dtype.cuh"

namespace ie::gpu {
namespace {

template <typename T, int BITS>
__global__ void dequantize_wna16_kernel(T* __restrict__ out, const uint32_t* __restrict__ qweight,
                                        const T* __restrict__ scales, const T* __restrict__ zeros,
                                        int64_t n, int64_t k, int group_size) {
  constexpr int P = 32 / BITS;
  constexpr uint32_t kMask = (1u << BITS) - 1;
  const int64_t words = k / P, groups = k / group_size;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * words) return;
  const int64_t f = idx / words, w = idx % words, g = w * P / group_size;
  const float s = to_float(scales[f * groups + g]), z = to_float(zeros[f * groups + g]);
  const uint32_t word = qweight[idx];
  float values[P];
#pragma unroll
  for (int j = 0; j < P; ++j) values[j] = (static_cast<float>((word >> (j * BITS)) & kMask) - z) * s;
  store_floats<T, P>(out + f * k + w * P, values);  // (a product of 16-bit values: exact, then rounded once)
}

}  // namespace

const char* launch_dequantize_wna16(void* out, const void* qweight, const void* scales,
                                    const void* zeros, int64_t n, int64_t k, int bits,
                                    int group_size, DType dtype, cudaStream_t stream) {
  if (bits != 4 && bits != 8) return "dequantize_wna16: 4 or 8 bits";
  const int64_t words = n * k / (32 / bits);
  const int threads = 256;
  const int64_t blocks = (words + threads - 1) / threads;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto* q = static_cast<const uint32_t*>(qweight);
    auto* s = static_cast<const T*>(scales);
    auto* z = static_cast<const T*>(zeros);
    if (bits == 4) {
      dequantize_wna16_kernel<T, 4><<<blocks, threads, 0, stream>>>(static_cast<T*>(out), q, s, z, n, k, group_size);
    } else {
      dequantize_wna16_kernel<T, 8><<<blocks, threads, 0, stream>>>(static_cast<T*>(out), q, s, z, n, k, group_size);
    }
  });
  return nullptr;
}

}  // namespace ie::gpu

#if IE_WARP_MMA
namespace ie::gpu {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * WARP_SIZE;

template <typename T>
struct Pair;
template <>
struct Pair<fp16_t> {
  using type = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // (1024, 1024): + q in the low mantissa bits
  static constexpr float kMagicValue = 1024.f;
};
template <>
struct Pair<bf16_t> {
  using type = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // (128, 128)
  static constexpr float kMagicValue = 128.f;
};

template <typename To, typename From>
__device__ __forceinline__ To bit_cast_(const From& v) {
  static_assert(sizeof(To) == sizeof(From));
  To out;
  memcpy(&out, &v, sizeof(To));
  return out;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The group constants of one W row, as pairs: (magic + z, magic + z) and (s, s); for 8-bit
// bf16 (whose 128 + q is not exact past 255) z itself.
template <typename T>
struct GroupConstants {
  uint32_t offset, scale;

  __device__ void load(const T* scales, const T* zeros, int64_t at) {
    using P2 = typename Pair<T>::type;
    const T s = scales[at], z = zeros[at];
    scale = bit_cast_<uint32_t>(P2(s, s));
    const T shifted = from_float<T>(to_float(z) + Pair<T>::kMagicValue);
    offset = bit_cast_<uint32_t>(P2(shifted, shifted));
    zero = to_float(z);
  }
  float zero;
};

// Values at bits `shift`.. and 16 + `shift`.. of `word` (BITS wide), dequantized as a pair.
template <typename T, int BITS>
__device__ __forceinline__ uint32_t dequantize_pair(uint32_t word, int shift, const GroupConstants<T>& c) {
  using P2 = typename Pair<T>::type;
  constexpr uint32_t kMask = ((1u << BITS) - 1) * 0x00010001u;
  const uint32_t q = (word >> shift) & kMask;
  P2 diff;
  if constexpr (BITS == 8 && std::is_same_v<T, bf16_t>) {
    diff = __floats2bfloat162_rn(static_cast<float>(q & 0xffu) - c.zero,
                                 static_cast<float>(q >> 16) - c.zero);  // exact: |q - z| < 256
  } else {
    diff = __hsub2(bit_cast_<P2>(q | Pair<T>::kMagic), bit_cast_<P2>(c.offset));
  }
  return bit_cast_<uint32_t>(__hmul2(diff, bit_cast_<P2>(c.scale)));
}

// One window of one lane: its vector of packed values in W rows `row` and `row` + 8, their group
// constants, and x's matching values for token `row` of each 8-token tile.
template <typename T, int BITS, int TILES>
struct Window {
  static constexpr int kValues = 128 / BITS;             // packed values in one 16-byte vector
  static constexpr int kXVecs = kValues * sizeof(T) / 16;  // x's 16-byte vectors for them
  uint4 w_lo, w_hi, x[TILES][kXVecs];
  GroupConstants<T> c_lo, c_hi;

  __device__ void load(const uint32_t* q_rows, int64_t words, const T* scales, const T* zeros,
                       int64_t groups, int group_size, const T* x_rows, int64_t x_stride, int rows,
                       int row, int first) {  // first: the lane's first input
    const int64_t word = first / (32 / BITS);
    w_lo = *reinterpret_cast<const uint4*>(q_rows + row * words + word);
    w_hi = *reinterpret_cast<const uint4*>(q_rows + (row + 8) * words + word);
    const int64_t group = first / group_size;
    c_lo.load(scales, zeros, row * groups + group);
    c_hi.load(scales, zeros, (row + 8) * groups + group);
#pragma unroll
    for (int t = 0; t < TILES; ++t) {
      const int token = t * 8 + row;
#pragma unroll
      for (int v = 0; v < kXVecs; ++v) {
        x[t][v] = token < rows ? reinterpret_cast<const uint4*>(x_rows + token * x_stride + first)[v]
                               : make_uint4(0, 0, 0, 0);
      }
    }
  }

  // x's values j and j + `apart` of the 2 * apart starting at value `base`, as a pair.
  __device__ uint32_t x_pair(int t, int base, int j, int apart) const {
    const int lo = base + j, hi = base + j + apart;  // value indices among the lane's kValues
    const uint32_t a = word_of(x[t][lo / 8], (lo % 8) / 2), b = word_of(x[t][hi / 8], (hi % 8) / 2);
    return __byte_perm(a, b, lo % 2 == 0 ? 0x5410 : 0x7632);
  }

  __device__ void multiply(float (&acc)[TILES][4]) const {
    constexpr int P = 32 / BITS, kApart = P / 2;
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // the vector's words
      const uint32_t lo = word_of(w_lo, i), hi = word_of(w_hi, i);
#pragma unroll
      for (int j = 0; j < kApart; j += 2) {  // one mma: pairs (j, j + apart), (j + 1, j + 1 + apart)
        const uint32_t a[4] = {dequantize_pair<T, BITS>(lo, j * BITS, c_lo),
                               dequantize_pair<T, BITS>(hi, j * BITS, c_hi),
                               dequantize_pair<T, BITS>(lo, (j + 1) * BITS, c_lo),
                               dequantize_pair<T, BITS>(hi, (j + 1) * BITS, c_hi)};
#pragma unroll
        for (int t = 0; t < TILES; ++t) {
          const uint32_t b[2] = {x_pair(t, i * P, j, kApart), x_pair(t, i * P, j + 1, kApart)};
          mma_16x8x16<T>(acc[t], a, b);
        }
      }
    }
  }
};

template <typename T, int BITS, int TILES>
__global__ IE_LAUNCH_BOUNDS_RESIDENT(kThreads, 2) void wna16_matmul_kernel(
    T* __restrict__ out, const T* __restrict__ x, const uint32_t* __restrict__ qweight,
    const T* __restrict__ scales, const T* __restrict__ zeros, const T* __restrict__ bias,
    int rows, int n, int k, int64_t x_stride, int group_size) {
  using W = Window<T, BITS, TILES>;
  constexpr int kWindow = 4 * W::kValues;  // inputs per warp step
  __shared__ float partial[kWarps][16][8 * TILES];  // [warp][feature][token]
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  const int row = lane / 4, col = lane % 4;  // the mma fragments' groupID, thread in group
  const int feature0 = blockIdx.x * 16;
  const int64_t words = k / (32 / BITS), groups = k / group_size;
  const uint32_t* q_rows = qweight + feature0 * words;
  const T* s_rows = scales + feature0 * groups;
  const T* z_rows = zeros + feature0 * groups;
  const int windows = k / kWindow;

  float acc[TILES][4] = {};
  W cur, next;
  int win = warp;
  if (win < windows) {
    cur.load(q_rows, words, s_rows, z_rows, groups, group_size, x, x_stride, rows, row,
             win * kWindow + col * W::kValues);
  }
  for (; win < windows; win += kWarps) {
    const int ahead = win + kWarps;
    if (ahead < windows) {
      next.load(q_rows, words, s_rows, z_rows, groups, group_size, x, x_stride, rows, row,
                ahead * kWindow + col * W::kValues);
    }
    cur.multiply(acc);
    cur = next;
  }

#pragma unroll
  for (int t = 0; t < TILES; ++t) {  // D: features row, row + 8 x tokens 2col, 2col + 1
    partial[warp][row][t * 8 + 2 * col] = acc[t][0];
    partial[warp][row][t * 8 + 2 * col + 1] = acc[t][1];
    partial[warp][row + 8][t * 8 + 2 * col] = acc[t][2];
    partial[warp][row + 8][t * 8 + 2 * col + 1] = acc[t][3];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < 16 * 8 * TILES; idx += kThreads) {
    const int feature = idx % 16, token = idx / 16;
    if (token >= rows) continue;
    float sum = bias != nullptr ? to_float(bias[feature0 + feature]) : 0.f;
#pragma unroll
    for (int v = 0; v < kWarps; ++v) sum += partial[v][feature][token];
    out[static_cast<int64_t>(token) * n + feature0 + feature] = from_float<T>(sum);
  }
}

template <typename T, int BITS>
void launch_for_rows(T* out, const T* x, const uint32_t* q, const T* s, const T* z, const T* bias,
                     int rows, int n, int k, int64_t x_stride, int group_size, cudaStream_t stream) {
  if (rows <= 8) {
    wna16_matmul_kernel<T, BITS, 1><<<n / 16, kThreads, 0, stream>>>(out, x, q, s, z, bias, rows, n, k, x_stride, group_size);
  } else {
    wna16_matmul_kernel<T, BITS, 2><<<n / 16, kThreads, 0, stream>>>(out, x, q, s, z, bias, rows, n, k, x_stride, group_size);
  }
}

}  // namespace

const char* launch_wna16_matmul(void* out, const void* x, const void* qweight, const void* scales,
                                const void* zeros, const void* bias, int rows, int n, int k,
                                int64_t x_stride, int bits, int group_size, DType dtype,
                                cudaStream_t stream) {
  if (dtype == DType::kFloat32) return "wna16_matmul: fp16 or bf16 only";
  if (bits != 4 && bits != 8) return "wna16_matmul: 4 or 8 bits";
  if (rows < 1 || rows > 16) return "wna16_matmul: 1 to 16 rows";
  const int values = 128 / bits;  // a lane's 16-byte vector; a window is four
  if (n % 16 != 0 || k % (4 * values) != 0 || group_size % values != 0) {
    return "wna16_matmul: N must be a multiple of 16, K of 128, a group of 32";
  }
  if (!warp_mma_supported()) return "wna16_matmul: needs sm_80 or later";
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (sizeof(T) == 2) {
      auto* o = static_cast<T*>(out);
      auto* xs = static_cast<const T*>(x);
      auto* q = static_cast<const uint32_t*>(qweight);
      auto* s = static_cast<const T*>(scales);
      auto* z = static_cast<const T*>(zeros);
      auto* b = static_cast<const T*>(bias);
      if (bits == 4) {
        launch_for_rows<T, 4>(o, xs, q, s, z, b, rows, n, k, x_stride, group_size, stream);
      } else {
        launch_for_rows<T, 8>(o, xs, q, s, z, b, rows, n, k, x_stride, group_size, stream);
      }
    }
  });
  return nullptr;
}

}  // namespace ie::gpu
#else
namespace ie::gpu {

const char* launch_wna16_matmul(void*, const void*, const void*, const void*, const void*,
                                const void*, int, int, int, int64_t, int, int, DType,
                                cudaStream_t) {
  return "wna16_matmul: needs the tensor cores' mma (CUDA sm_80+)";
}

}  // namespace ie::gpu
#endif
