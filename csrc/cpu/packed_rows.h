// What the CPU's packed-weight products share (wna16.cpp, lut_gemm.cpp): x regrouped so that a
// vector lane per packed word reads its x with plain loads, and the choice of the AVX2 build of
// their loops.
#pragma once

#include <cstdint>
#include <vector>

namespace ie::cpu {

// x [rows, k] as float, each row regrouped so that value j of every word of `per_word` values
// sits in one contiguous run: xt[m][j][w] = x[m][w * per_word + j].
template <typename T>
std::vector<float> regroup_inputs(const T* x, int64_t rows, int64_t k, int per_word) {
  const int64_t words = k / per_word;
  std::vector<float> xt(rows * k);
  for (int64_t m = 0; m < rows; ++m) {
    const T* xm = x + m * k;
    for (int64_t w = 0; w < words; ++w) {
      for (int j = 0; j < per_word; ++j) xt[m * k + j * words + w] = static_cast<float>(xm[w * per_word + j]);
    }
  }
  return xt;
}

// Whether this CPU runs the loops built for AVX2 and FMA (the rest of the build targets baseline
// x86-64).
inline bool has_avx2_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

}  // namespace ie::cpu
