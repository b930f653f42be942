// The op schemas of inference_engine._C, shared by every backend.
//
// Each backend registers its kernels for these names with TORCH_LIBRARY_IMPL (cpu/cpu_bindings.cpp,
// gpu/gpu_bindings.cpp). Every op writes into caller-allocated outputs and returns nothing, so the
// schemas' mutation annotations are all torch.compile and CUDA graphs need.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(inference_engine, m) {
  m.def("rms_norm(Tensor! out, Tensor input, Tensor weight, float epsilon) -> ()");
  m.def(
      "fused_add_rms_norm(Tensor! out, Tensor! residual_out, Tensor input, Tensor residual, "
      "Tensor weight, float epsilon) -> ()");
  m.def(
      "rotary_embedding(Tensor! query_out, Tensor! key_out, Tensor positions, Tensor query, "
      "Tensor key, int head_size, Tensor cos_sin_cache, bool is_neox) -> ()");
  m.def(
      "rotary_and_cache(Tensor! query_out, Tensor! key_cache, Tensor! value_cache, "
      "Tensor positions, Tensor query, Tensor key, Tensor value, Tensor slot_mapping, "
      "int head_size, Tensor cos_sin_cache, bool is_neox) -> ()");
  m.def("silu_and_mul(Tensor! out, Tensor input) -> ()");
  m.def("gelu_and_mul(Tensor! out, Tensor input) -> ()");
  m.def("gelu_tanh_and_mul(Tensor! out, Tensor input) -> ()");
  m.def(
      "reshape_and_cache(Tensor key, Tensor value, Tensor! key_cache, Tensor! value_cache, "
      "Tensor slot_mapping) -> ()");
  m.def("copy_blocks(Tensor(a!)[] key_caches, Tensor(b!)[] value_caches, Tensor block_mapping) -> ()");
  m.def("swap_blocks(Tensor src, Tensor! dst, Tensor block_mapping) -> ()");
  m.def(
      "paged_attention_v1(Tensor! out, Tensor query, Tensor key_cache, Tensor value_cache, "
      "Tensor block_tables, Tensor seq_lens, float scale, Tensor? alibi_slopes) -> ()");
  m.def(
      "paged_attention_v2(Tensor! out, Tensor! exp_sums, Tensor! max_logits, Tensor! tmp_out, "
      "Tensor query, Tensor key_cache, Tensor value_cache, Tensor block_tables, Tensor seq_lens, "
      "float scale, Tensor? alibi_slopes, int partition_size) -> ()");
  m.def("skinny_matmul(Tensor! out, Tensor input, Tensor weight, Tensor? bias) -> ()");
  m.def("greedy_sample(Tensor! tokens, Tensor! logprobs, Tensor logits) -> ()");
  m.def(
      "wna16_matmul(Tensor! out, Tensor x, Tensor qweight, Tensor scales, Tensor zeros, int bits, "
      "int group_size, Tensor? bias) -> ()");
  m.def(
      "dequantize_wna16(Tensor! out, Tensor qweight, Tensor scales, Tensor zeros, int bits, "
      "int group_size) -> ()");
  m.def("lut_matmul(Tensor! out, Tensor x, Tensor qweight, Tensor lut, Tensor? bias) -> ()");
  m.def("dequantize_lut(Tensor! out, Tensor qweight, Tensor lut) -> ()");
}

// The ops are reached through torch.ops.inference_engine; the Python module itself is empty: it
// only has to be importable, so that `import inference_engine._C` loads the library and runs the
// registrations above.
PyMODINIT_FUNC PyInit__C() {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
