// Gated activations on CPU: input [..., 2 * d] holds (gate, up); out [..., d] = act(gate) * up.
#include <ATen/Parallel.h>

#include <cmath>

#include "../checks.h"
#include "cpu_ops.h"
#include "vec.h"

namespace ie::cpu {
namespace {

struct Silu {
  static float apply(float x) { return x / (1.f + std::exp(-x)); }
};

struct Gelu {
  static float apply(float x) { return 0.5f * x * (1.f + std::erf(x * float(M_SQRT1_2))); }
};

struct GeluTanh {
  static float apply(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.f + std::tanh(k * (x + 0.044715f * x * x * x)));
  }
};

template <typename Act, typename T>
void act_and_mul(T* out, const T* input, int64_t rows, int64_t d) {
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* gate = input + r * 2 * d;
      const T* up = gate + d;
      T* o = out + r * d;
#pragma omp simd
      for (int64_t i = 0; i < d; ++i) {
        o[i] = static_cast<T>(Act::apply(static_cast<float>(gate[i])) * static_cast<float>(up[i]));
      }
    }
  });
}

template <typename Act>
void launch(at::Tensor& out, const at::Tensor& input) {
  const int64_t d = check_act_and_mul(out, input);
  IE_DISPATCH_FLOAT_TYPES(input.scalar_type(), "act_and_mul", [&] {
    act_and_mul<Act, scalar_t>(out.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(), out.numel() / d, d);
  });
}

}  // namespace

void silu_and_mul(at::Tensor& out, const at::Tensor& input) { launch<Silu>(out, input); }
void gelu_and_mul(at::Tensor& out, const at::Tensor& input) { launch<Gelu>(out, input); }
void gelu_tanh_and_mul(at::Tensor& out, const at::Tensor& input) {
  launch<GeluTanh>(out, input);
}

}  // namespace ie::cpu
