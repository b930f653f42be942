// Integer-weight products on the GPU (W4A16, W8A16; layout in inference_engine/ops/quantized_linear.py):
// qweight int32 [N, K / p] (p = 32 / bits values per word, lowest first), scales and zeros [N, G].
//
// wna16_matmul, for 1 to 16 rows of x (decode), is packed_matmul.cuh's stream over W with this
// file's policy: the dequantization is the reference's, exactly. A 4-bit value q enters the low
// mantissa bits of a 16-bit number (1024 + q in fp16, 128 + q in bf16, both exact), minus the
// same number built from the zero point gives q - z exactly, and one multiply by the scale
// rounds once. A lane's values lie in one group (groups of 32 or more).
//
// dequantize_wna16 writes the 16-bit (or float32) weight, for the dense matmul of many rows.
#include "packed_matmul.cuh"

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

using packed::bit_cast_;
using packed::Pair;

// The group constants of one W row, as pairs: (magic + z, magic + z) and (s, s); for 8-bit
// bf16 (whose 128 + q is not exact past 255) z itself.
template <typename T>
struct GroupConstants {
  uint32_t offset, scale;
  float zero;

  __device__ void load(const T* scales, const T* zeros, int64_t at) {
    using P2 = typename Pair<T>::type;
    const T s = scales[at], z = zeros[at];
    scale = bit_cast_<uint32_t>(P2(s, s));
    const T shifted = from_float<T>(to_float(z) + Pair<T>::kMagicValue);
    offset = bit_cast_<uint32_t>(P2(shifted, shifted));
    zero = to_float(z);
  }
};

// packed_matmul.cuh's policy for integer weights: (q - z) s, exactly as the reference rounds it.
template <typename T, int BITS>
struct AffineDequant {
  struct Params {
    const T* scales;
    const T* zeros;
    int group_size;
  };
  struct Shared {};
  struct Constants {
    GroupConstants<T> lo, hi;
  };
  const T* scales;  // the block's 16 rows
  const T* zeros;
  int64_t groups;
  int group_size;

  __device__ AffineDequant(const Params& p, int feature0, int k, Shared&)
      : groups(k / p.group_size), group_size(p.group_size) {
    scales = p.scales + feature0 * groups;
    zeros = p.zeros + feature0 * groups;
  }

  __device__ void load(Constants& c, int row, int first) const {
    const int64_t group = first / group_size;  // a lane's values lie in one group
    c.lo.load(scales, zeros, row * groups + group);
    c.hi.load(scales, zeros, (row + 8) * groups + group);
  }

  __device__ uint32_t pair(const Constants& c, uint32_t word, int shift, bool high) const {
    using P2 = typename Pair<T>::type;
    const GroupConstants<T>& g = high ? c.hi : c.lo;
    constexpr uint32_t kMask = ((1u << BITS) - 1) * 0x00010001u;
    const uint32_t q = (word >> shift) & kMask;
    P2 diff;
    if constexpr (BITS == 8 && std::is_same_v<T, bf16_t>) {
      diff = __floats2bfloat162_rn(static_cast<float>(q & 0xffu) - g.zero,
                                   static_cast<float>(q >> 16) - g.zero);  // exact: |q - z| < 256
    } else {
      diff = __hsub2(bit_cast_<P2>(q | Pair<T>::kMagic), bit_cast_<P2>(g.offset));
    }
    return bit_cast_<uint32_t>(__hmul2(diff, bit_cast_<P2>(g.scale)));
  }
};

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
      auto* b = static_cast<const T*>(bias);
      if (bits == 4) {
        using D = AffineDequant<T, 4>;
        const typename D::Params p{static_cast<const T*>(scales), static_cast<const T*>(zeros), group_size};
        packed::launch_packed_matmul<T, 4, D>(o, xs, q, p, b, rows, n, k, x_stride, stream);
      } else {
        using D = AffineDequant<T, 8>;
        const typename D::Params p{static_cast<const T*>(scales), static_cast<const T*>(zeros), group_size};
        packed::launch_packed_matmul<T, 8, D>(o, xs, q, p, b, rows, n, k, x_stride, stream);
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
