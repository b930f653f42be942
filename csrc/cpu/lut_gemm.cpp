// Look-up weight products on CPU (SqueezeLLM; layout in inference_engine/ops/quantized_linear.py):
// qweight int32 [N, K / 8] of 4-bit indices, lut [N, 16]: W[n, k] = lut[n, q[n, k]].
//
// lut_matmul streams each packed row of W once per two rows of x, as wna16.cpp does: eight words
// at a time, a vector lane each, every index looked up in the row's table of 16 floats and
// multiplied by x regrouped (packed_rows.h).
#include <ATen/Parallel.h>

#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "../checks.h"
#include "cpu_ops.h"
#include "packed_rows.h"
#include "vec.h"

namespace ie::cpu {
namespace {

constexpr int kLanes = 8;
constexpr int kPerWord = 8;  // 4-bit indices

// v[j][l] = lut[index j of word l], for eight words.
struct PlainLookup {
  const float* lut;
  inline __attribute__((always_inline)) void operator()(float (&v)[kPerWord][kLanes],
                                                        const uint32_t* __restrict words) const {
#pragma GCC unroll 8
    for (int j = 0; j < kPerWord; ++j) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) v[j][l] = lut[(words[l] >> (4 * j)) & 0xfu];
    }
  }
};

#if defined(__x86_64__) && defined(__GNUC__)
// The same with AVX2: the table's two halves in registers, each index picking from both by its
// low three bits (vpermps) and its fourth choosing between them; a gather would go to memory.
struct Avx2Lookup {
  __m256 low, high;

  __attribute__((target("avx2,fma"))) explicit Avx2Lookup(const float* lut)
      : low(_mm256_loadu_ps(lut)), high(_mm256_loadu_ps(lut + 8)) {}

  __attribute__((target("avx2,fma"))) inline void operator()(
      float (&v)[kPerWord][kLanes], const uint32_t* __restrict words) const {
    const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words));
    const __m256i mask = _mm256_set1_epi32(0xf);
#pragma GCC unroll 8
    for (int j = 0; j < kPerWord; ++j) {
      const __m256i index = _mm256_and_si256(_mm256_srl_epi32(packed, _mm_cvtsi32_si128(4 * j)), mask);
      const __m256 from_low = _mm256_permutevar8x32_ps(low, index);
      const __m256 from_high = _mm256_permutevar8x32_ps(high, index);
      const __m256 pick_high = _mm256_castsi256_ps(_mm256_slli_epi32(index, 28));  // bit 3 as the sign
      _mm256_storeu_ps(v[j], _mm256_blendv_ps(from_low, from_high, pick_high));
    }
  }
};
#endif

template <int R, typename Lookup>
inline __attribute__((always_inline)) void rows_lookup_product(float* __restrict total,
                                                               const uint32_t* __restrict row,
                                                               const float* __restrict xt,
                                                               const Lookup& lookup,
                                                               int64_t words) {
  const int64_t k = words * kPerWord;
  float t[R][kLanes] = {};
  for (int64_t w0 = 0; w0 < words; w0 += kLanes) {
    float v[kPerWord][kLanes];
    lookup(v, row + w0);
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < kPerWord; ++j) {
        const float* __restrict xs = xt + r * k + j * words + w0;
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) t[r][l] += xs[l] * v[j][l];
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    float sum = 0.f;
    for (int l = 0; l < kLanes; ++l) sum += t[r][l];
    total[r] = sum;
  }
}

#define IE_LOOKUP_PARAMS                                                                    \
  float *__restrict total, const uint32_t *__restrict row, const float *__restrict xt,     \
      const float *__restrict lut, int64_t rows, int64_t words

template <typename Lookup>
inline __attribute__((always_inline)) void lookup_products_body(IE_LOOKUP_PARAMS,
                                                                const Lookup& lookup) {
  const int64_t k = words * kPerWord;
  int64_t m = 0;
  for (; m + 2 <= rows; m += 2) rows_lookup_product<2>(total + m, row, xt + m * k, lookup, words);
  if (m < rows) rows_lookup_product<1>(total + m, row, xt + m * k, lookup, words);
}

void lookup_products_baseline(IE_LOOKUP_PARAMS) {
  lookup_products_body(total, row, xt, lut, rows, words, PlainLookup{lut});
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) void lookup_products_avx2(IE_LOOKUP_PARAMS) {
  lookup_products_body(total, row, xt, lut, rows, words, Avx2Lookup(lut));
}
#endif

template <typename T>
void lut_matmul_impl(T* out, const T* x, const uint32_t* qweight, const T* lut, const T* bias,
                     int64_t rows, int64_t n, int64_t k) {
  const int64_t words = k / kPerWord;
  const std::vector<float> xt = regroup_inputs(x, rows, k, kPerWord);
  auto products = lookup_products_baseline;
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_avx2_fma()) products = lookup_products_avx2;
#endif
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    float table[16];
    std::vector<float> total(rows);
    for (int64_t f = begin; f < end; ++f) {
      load_row(table, lut + f * 16, 16);
      products(total.data(), qweight + f * words, xt.data(), table, rows, words);
      const float b = bias != nullptr ? static_cast<float>(bias[f]) : 0.f;
      for (int64_t m = 0; m < rows; ++m) out[m * n + f] = static_cast<T>(total[m] + b);
    }
  });
}

template <typename T>
void dequantize_lut_impl(T* out, const uint32_t* qweight, const T* lut, int64_t n, int64_t k) {
  const int64_t words = k / kPerWord;
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t f = begin; f < end; ++f) {
      const uint32_t* row = qweight + f * words;
      const T* table = lut + f * 16;
      for (int64_t w = 0; w < words; ++w) {
        for (int j = 0; j < kPerWord; ++j) out[f * k + w * kPerWord + j] = table[(row[w] >> (4 * j)) & 0xfu];
      }
    }
  });
}

}  // namespace

void lut_matmul(at::Tensor& out, const at::Tensor& x, const at::Tensor& qweight,
                const at::Tensor& lut, const std::optional<at::Tensor>& bias) {
  check_lut(qweight, lut);
  const int64_t n = qweight.size(0), k = qweight.size(1) * kPerWord;
  check_wna16_matmul(out, x, lut, bias, n, k);
  TORCH_CHECK(k % (kLanes * kPerWord) == 0, "lut_matmul: on the CPU, K must be a multiple of 64");
  IE_DISPATCH_FLOAT_TYPES(x.scalar_type(), "lut_matmul", [&] {
    lut_matmul_impl<scalar_t>(out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                              reinterpret_cast<const uint32_t*>(qweight.data_ptr<int32_t>()),
                              lut.data_ptr<scalar_t>(),
                              bias ? bias->data_ptr<scalar_t>() : nullptr, x.size(0), n, k);
  });
}

void dequantize_lut(at::Tensor& out, const at::Tensor& qweight, const at::Tensor& lut) {
  check_lut(qweight, lut);
  const int64_t n = qweight.size(0), k = qweight.size(1) * kPerWord;
  check_dequantize_wna16(out, lut, n, k);
  IE_DISPATCH_FLOAT_TYPES(lut.scalar_type(), "dequantize_lut", [&] {
    dequantize_lut_impl<scalar_t>(out.data_ptr<scalar_t>(),
                                  reinterpret_cast<const uint32_t*>(qweight.data_ptr<int32_t>()),
                                  lut.data_ptr<scalar_t>(), n, k);
  });
}

}  // namespace ie::cpu
