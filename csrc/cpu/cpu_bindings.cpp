// Registers the CPU implementations of the inference_engine ops.
#include <torch/library.h>

#include "cpu_ops.h"

TORCH_LIBRARY_IMPL(inference_engine, CPU, m) {
  m.impl("rms_norm", &ie::cpu::rms_norm);
  m.impl("fused_add_rms_norm", &ie::cpu::fused_add_rms_norm);
  m.impl("rotary_embedding", &ie::cpu::rotary_embedding);
  m.impl("rotary_and_cache", &ie::cpu::rotary_and_cache);
  m.impl("silu_and_mul", &ie::cpu::silu_and_mul);
  m.impl("gelu_and_mul", &ie::cpu::gelu_and_mul);
  m.impl("gelu_tanh_and_mul", &ie::cpu::gelu_tanh_and_mul);
  m.impl("reshape_and_cache", &ie::cpu::reshape_and_cache);
  m.impl("copy_blocks", &ie::cpu::copy_blocks);
  m.impl("swap_blocks", &ie::cpu::swap_blocks);
  m.impl("paged_attention_v1", &ie::cpu::paged_attention_v1);
  m.impl("paged_attention_v2", &ie::cpu::paged_attention_v2);
  m.impl("greedy_sample", &ie::cpu::greedy_sample);
  m.impl("wna16_matmul", &ie::cpu::wna16_matmul);
  m.impl("dequantize_wna16", &ie::cpu::dequantize_wna16);
  m.impl("lut_matmul", &ie::cpu::lut_matmul);
  m.impl("dequantize_lut", &ie::cpu::dequantize_lut);
}
