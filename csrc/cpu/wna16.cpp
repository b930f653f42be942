// Integer-weight products on CPU (W4A16, W8A16; layout in inference_engine/ops/quantized_linear.py):
// qweight int32 [N, K / p] with p = 32 / bits values per word, scales and zeros [N, G].
//
// wna16_matmul streams each packed row of W once per two rows of x, summing x (q - z) per word
// (q - z is exact: no cancellation) and scaling each word's sum by its group's scale. To keep
// that loop vectorized over whole words (a lane per word, all its values unpacked in registers),
// x is regrouped once per call: value j of every word sits in one contiguous run
// (xt[j][w] = x[w p + j]), so the lanes read x with plain vector loads.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "cpu_ops.h"
#include "packed_rows.h"
#include "vec.h"

namespace ie::cpu {
namespace {

// R rows of x (regrouped, k apart in xt) times one packed row of W, eight words at a time (a
// vector lane each): the words are unpacked in registers once, their values less the zero point
// times each row's x summed, scaled by the word's group scale, added to that row's lanes.
constexpr int kLanes = 8;

template <int BITS, int R>
inline __attribute__((always_inline)) void rows_product(float* __restrict total,
                                                        const uint32_t* __restrict row,
                                                        const float* __restrict xt,
                                                        const float* __restrict z,
                                                        const float* __restrict s, int64_t words) {
  constexpr int kPerWord = 32 / BITS;
  constexpr uint32_t kMask = (1u << BITS) - 1;
  const int64_t k = words * kPerWord;
  float t[R][kLanes] = {};
  for (int64_t w0 = 0; w0 < words; w0 += kLanes) {
    float v[kPerWord][kLanes];
#pragma GCC unroll 8
    for (int j = 0; j < kPerWord; ++j) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        v[j][l] = static_cast<float>((row[w0 + l] >> (j * BITS)) & kMask) - z[w0 + l];
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      float sum[kLanes] = {};
#pragma GCC unroll 8
      for (int j = 0; j < kPerWord; ++j) {
        const float* __restrict xs = xt + r * k + j * words + w0;
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) sum[l] += xs[l] * v[j][l];
      }
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) t[r][l] += s[w0 + l] * sum[l];
    }
  }
  for (int r = 0; r < R; ++r) {
    float sum = 0.f;
    for (int l = 0; l < kLanes; ++l) sum += t[r][l];
    total[r] = sum;
  }
}

// One row of x: the compiler's own vectorization of the word loop, a lane per word, is faster
// here than rows_product's blocks.
template <int BITS>
inline __attribute__((always_inline)) float one_row_product(const uint32_t* __restrict row,
                                                            const float* __restrict xt,
                                                            const float* __restrict z,
                                                            const float* __restrict s,
                                                            int64_t words) {
  constexpr int kPerWord = 32 / BITS;
  constexpr uint32_t kMask = (1u << BITS) - 1;
  float total = 0.f;
#pragma omp simd reduction(+ : total)
  for (int64_t w = 0; w < words; ++w) {
    const uint32_t word = row[w];
    float sum = 0.f;
#pragma GCC unroll 8
    for (int j = 0; j < kPerWord; ++j) {
      sum += xt[j * words + w] * (static_cast<float>((word >> (j * BITS)) & kMask) - z[w]);
    }
    total += s[w] * sum;
  }
  return total;
}

// total[m] for every row m of x, two rows at a time (more spill the registers); z and s hold each word's group's zero
// point and scale.
#define IE_ROW_PRODUCTS_PARAMS                                                              \
  float *__restrict total, const uint32_t *__restrict row, const float *__restrict xt,     \
      const float *__restrict z, const float *__restrict s, int64_t rows, int64_t words, int bits

template <int BITS>
inline __attribute__((always_inline)) void rows_products(IE_ROW_PRODUCTS_PARAMS) {
  const int64_t k = words * (32 / BITS);
  int64_t m = 0;
  for (; m + 2 <= rows; m += 2) rows_product<BITS, 2>(total + m, row, xt + m * k, z, s, words);
  if (m < rows) total[m] = one_row_product<BITS>(row, xt + m * k, z, s, words);
}

inline __attribute__((always_inline)) void row_products_body(IE_ROW_PRODUCTS_PARAMS) {
  if (bits == 4) {
    rows_products<4>(total, row, xt, z, s, rows, words, bits);
  } else {
    rows_products<8>(total, row, xt, z, s, rows, words, bits);
  }
}

// The build targets baseline x86-64; where the CPU has AVX2 and FMA (checked once), the same
// loops compiled for them run instead.
void row_products_baseline(IE_ROW_PRODUCTS_PARAMS) {
  row_products_body(total, row, xt, z, s, rows, words, bits);
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) void row_products_avx2(IE_ROW_PRODUCTS_PARAMS) {
  row_products_body(total, row, xt, z, s, rows, words, bits);
}
#endif

using RowProducts = void (*)(IE_ROW_PRODUCTS_PARAMS);

RowProducts pick_row_products() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_avx2_fma()) return row_products_avx2;
#endif
  return row_products_baseline;
}

template <typename T>
void wna16_matmul_impl(T* out, const T* x, const uint32_t* qweight, const T* scales,
                       const T* zeros, const T* bias, int64_t rows, int64_t n, int64_t k,
                       int bits, int64_t group_size) {
  const int per_word = 32 / bits;
  const int64_t words = k / per_word, groups = k / group_size, group_words = group_size / per_word;
  const std::vector<float> xt = regroup_inputs(x, rows, k, per_word);
  static const RowProducts row_products = pick_row_products();
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    // Each word's zero point and scale (its group's), and the row's products.
    std::vector<float> z(words), s(words), total(rows);
    for (int64_t f = begin; f < end; ++f) {
      for (int64_t g = 0; g < groups; ++g) {
        const float zg = static_cast<float>(zeros[f * groups + g]);
        const float sg = static_cast<float>(scales[f * groups + g]);
        std::fill_n(z.data() + g * group_words, group_words, zg);
        std::fill_n(s.data() + g * group_words, group_words, sg);
      }
      row_products(total.data(), qweight + f * words, xt.data(), z.data(), s.data(), rows,
                   words, bits);
      const float b = bias != nullptr ? static_cast<float>(bias[f]) : 0.f;
      for (int64_t m = 0; m < rows; ++m) out[m * n + f] = static_cast<T>(total[m] + b);
    }
  });
}

// W[f, i] = T((q - z) s): the product of two 16-bit values is exact in float, so rounding it
// once to T gives what the reference's T arithmetic gives.
template <typename T, int BITS>
void dequantize_wna16_impl(T* out, const uint32_t* qweight, const T* scales, const T* zeros,
                           int64_t n, int64_t k, int64_t group_size) {
  constexpr int kPerWord = 32 / BITS;
  constexpr uint32_t kMask = (1u << BITS) - 1;
  const int64_t words = k / kPerWord, groups = k / group_size, group_words = group_size / kPerWord;
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t f = begin; f < end; ++f) {
      const uint32_t* row = qweight + f * words;
      T* out_row = out + f * k;
      for (int64_t g = 0; g < groups; ++g) {
        const float s = static_cast<float>(scales[f * groups + g]);
        const float z = static_cast<float>(zeros[f * groups + g]);
        for (int64_t w = g * group_words; w < (g + 1) * group_words; ++w) {
          const uint32_t word = row[w];
#pragma GCC unroll 8
          for (int j = 0; j < kPerWord; ++j) {
            out_row[w * kPerWord + j] = static_cast<T>((static_cast<float>((word >> (j * BITS)) & kMask) - z) * s);
          }
        }
      }
    }
  });
}

}  // namespace

void wna16_matmul(at::Tensor& out, const at::Tensor& x, const at::Tensor& qweight,
                  const at::Tensor& scales, const at::Tensor& zeros, int64_t bits,
                  int64_t group_size, const std::optional<at::Tensor>& bias) {
  check_wna16(qweight, scales, zeros, bits, group_size);
  const int64_t n = qweight.size(0), k = scales.size(1) * group_size;
  check_wna16_matmul(out, x, scales, bias, n, k);
  TORCH_CHECK(k % (kLanes * 32 / bits) == 0, "wna16_matmul: on the CPU, K must be whole blocks of ",
              kLanes, " words");
  IE_DISPATCH_FLOAT_TYPES(x.scalar_type(), "wna16_matmul", [&] {
    wna16_matmul_impl<scalar_t>(
        out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
        reinterpret_cast<const uint32_t*>(qweight.data_ptr<int32_t>()), scales.data_ptr<scalar_t>(),
        zeros.data_ptr<scalar_t>(), bias ? bias->data_ptr<scalar_t>() : nullptr, x.size(0), n, k,
        static_cast<int>(bits), group_size);
  });
}

void dequantize_wna16(at::Tensor& out, const at::Tensor& qweight, const at::Tensor& scales,
                      const at::Tensor& zeros, int64_t bits, int64_t group_size) {
  check_wna16(qweight, scales, zeros, bits, group_size);
  const int64_t n = qweight.size(0), k = scales.size(1) * group_size;
  check_dequantize_wna16(out, scales, n, k);
  IE_DISPATCH_FLOAT_TYPES(scales.scalar_type(), "dequantize_wna16", [&] {
    auto* q = reinterpret_cast<const uint32_t*>(qweight.data_ptr<int32_t>());
    if (bits == 4) {
      dequantize_wna16_impl<scalar_t, 4>(out.data_ptr<scalar_t>(), q, scales.data_ptr<scalar_t>(),
                                         zeros.data_ptr<scalar_t>(), n, k, group_size);
    } else {
      dequantize_wna16_impl<scalar_t, 8>(out.data_ptr<scalar_t>(), q, scales.data_ptr<scalar_t>(),
                                         zeros.data_ptr<scalar_t>(), n, k, group_size);
    }
  });
}

}  // namespace ie::cpu
