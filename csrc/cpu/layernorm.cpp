// RMSNorm on CPU, rounding where Hugging Face's LlamaRMSNorm rounds: the normalized row is cast to
// the input dtype before the weight multiplies it, and the residual sum is rounded before the norm.
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "../checks.h"
#include "cpu_ops.h"
#include "vec.h"

namespace ie::cpu {
namespace {

// out = weight * T(row * rsqrt(mean(row^2) + eps)); `row` holds the input row in float32.
template <typename T>
void normalize_row(T* out, const float* row, const T* weight, int64_t hidden, float eps) {
  const float rinv = 1.f / std::sqrt(dot(row, row, hidden) / hidden + eps);
#pragma omp simd
  for (int64_t i = 0; i < hidden; ++i) {
    const float h = static_cast<float>(static_cast<T>(row[i] * rinv));
    out[i] = static_cast<T>(h * static_cast<float>(weight[i]));
  }
}

template <typename T>
void rms_norm_impl(T* out, T* residual_out, const T* input, const T* residual, const T* weight,
                   int64_t rows, int64_t hidden, float eps) {
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> row(hidden);
    for (int64_t r = begin; r < end; ++r) {
      const T* x = input + r * hidden;
      if (residual == nullptr) {
        load_row(row.data(), x, hidden);
      } else {
        const T* res = residual + r * hidden;
        T* res_out = residual_out + r * hidden;
#pragma omp simd
        for (int64_t i = 0; i < hidden; ++i) {
          res_out[i] = static_cast<T>(static_cast<float>(x[i]) + static_cast<float>(res[i]));
          row[i] = static_cast<float>(res_out[i]);
        }
      }
      normalize_row(out + r * hidden, row.data(), weight, hidden, eps);
    }
  });
}

}  // namespace

void rms_norm(at::Tensor& out, const at::Tensor& input, const at::Tensor& weight, double epsilon) {
  check_rms_norm(out, input, weight);
  const int64_t hidden = input.size(-1);
  IE_DISPATCH_FLOAT_TYPES(input.scalar_type(), "rms_norm", [&] {
    rms_norm_impl<scalar_t>(out.data_ptr<scalar_t>(), nullptr, input.data_ptr<scalar_t>(), nullptr,
                            weight.data_ptr<scalar_t>(), input.numel() / hidden, hidden, epsilon);
  });
}

void fused_add_rms_norm(at::Tensor& out, at::Tensor& residual_out, const at::Tensor& input,
                        const at::Tensor& residual, const at::Tensor& weight, double epsilon) {
  check_rms_norm(out, input, weight);
  check_rms_norm(residual_out, residual, weight);
  TORCH_CHECK(residual.sizes() == input.sizes(), "fused_add_rms_norm: residual must match input");
  const int64_t hidden = input.size(-1);
  IE_DISPATCH_FLOAT_TYPES(input.scalar_type(), "fused_add_rms_norm", [&] {
    rms_norm_impl<scalar_t>(out.data_ptr<scalar_t>(), residual_out.data_ptr<scalar_t>(),
                            input.data_ptr<scalar_t>(), residual.data_ptr<scalar_t>(),
                            weight.data_ptr<scalar_t>(), input.numel() / hidden, hidden, epsilon);
  });
}

}  // namespace ie::cpu
