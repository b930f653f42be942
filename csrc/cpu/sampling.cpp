// Greedy sampling on CPU in one pass a row: the first index of the largest logit and its
// log-probability (-log sum exp(logit - largest)), as the GPU kernel computes them.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "../checks.h"
#include "cpu_ops.h"

namespace ie::cpu {
namespace {

template <typename T>
void greedy_sample_impl(int64_t* tokens, float* logprobs, const T* logits, int64_t rows,
                        int64_t vocab, int64_t row_stride) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = logits + r * row_stride;
      float max = -std::numeric_limits<float>::infinity();
      double sum = 0.0;  // one serial sum over the whole row: float would drift by ~1e-4
      int64_t index = 0;
      for (int64_t i = 0; i < vocab; ++i) {  // NaN logits are skipped (both tests fail)
        const float x = static_cast<float>(row[i]);
        if (x > max) {
          sum = sum * std::exp(static_cast<double>(max) - x) + 1.0;
          max = x;
          index = i;
        } else if (x > -std::numeric_limits<float>::infinity()) {
          sum += std::exp(static_cast<double>(x) - max);
        }
      }
      tokens[r] = index;
      logprobs[r] = sum > 0.0 ? static_cast<float>(-std::log(sum))
                              : std::numeric_limits<float>::quiet_NaN();
    }
  });
}

}  // namespace

void greedy_sample(at::Tensor& tokens, at::Tensor& logprobs, const at::Tensor& logits) {
  check_greedy_sample(tokens, logprobs, logits);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "greedy_sample", [&] {
        greedy_sample_impl(tokens.data_ptr<int64_t>(), logprobs.data_ptr<float>(),
                           logits.data_ptr<scalar_t>(), logits.size(0), logits.size(1),
                           logits.stride(0));
      });
}

}  // namespace ie::cpu
