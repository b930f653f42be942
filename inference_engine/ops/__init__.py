"""The Python face of the custom ops: the layers call only these names.

Each op runs, per device type, the compiled extension (inference_engine._C) when it has a kernel
for that device, else a Triton kernel where one exists (GPU only), else its plain-PyTorch
reference (the `*_ref` functions beside this file). The choice is logged once per op and device.
"""
from inference_engine.ops import _compiled, _compiled_quantized
from inference_engine.ops._dispatch import Op
from inference_engine.ops.activation import (gelu_and_mul_ref, gelu_tanh_and_mul_ref,
                                             silu_and_mul_ref)
from inference_engine.ops.attention import (copy_blocks_ref, paged_attention_ref,
                                            prefill_attention_ref, reshape_and_cache_ref,
                                            swap_blocks_ref)
from inference_engine.ops.layernorm import fused_add_rms_norm_ref, rms_norm_ref
from inference_engine.ops.linear import skinny_matmul_ref
from inference_engine.ops.quantized_linear import (dequantize_lut_ref, dequantize_wna16_ref,
                                                   lut_matmul_ref, wna16_matmul_ref)
from inference_engine.ops.rotary import rotary_and_cache_ref, rotary_embedding_ref
from inference_engine.ops.sampling import greedy_sample_ref


def _triton_prefill_attention(*args, **kwargs):
    from inference_engine.ops.triton_prefill_attention import prefill_attention
    return prefill_attention(*args, **kwargs)


def _triton_paged_attention(*args, **kwargs):
    from inference_engine.ops.triton_prefill_attention import paged_attention
    return paged_attention(*args, **kwargs)


def _triton_wna16_matmul(*args, **kwargs):
    from inference_engine.ops.triton_wna16 import wna16_matmul
    return wna16_matmul(*args, **kwargs)


def _triton_lut_matmul(*args, **kwargs):
    from inference_engine.ops.triton_wna16 import lut_matmul
    return lut_matmul(*args, **kwargs)


def _swap_device(src, dst, block_mapping) -> str:
    """A swap between host and GPU runs on the GPU side."""
    return "cuda" if "cuda" in (src.device.type, dst.device.type) else src.device.type


rms_norm = Op(rms_norm_ref, _compiled.rms_norm)
fused_add_rms_norm = Op(fused_add_rms_norm_ref, _compiled.fused_add_rms_norm)
rotary_embedding = Op(rotary_embedding_ref, _compiled.rotary_embedding)
rotary_and_cache = Op(rotary_and_cache_ref, _compiled.rotary_and_cache)
silu_and_mul = Op(silu_and_mul_ref, _compiled.silu_and_mul)
gelu_and_mul = Op(gelu_and_mul_ref, _compiled.gelu_and_mul)
gelu_tanh_and_mul = Op(gelu_tanh_and_mul_ref, _compiled.gelu_tanh_and_mul)
reshape_and_cache = Op(reshape_and_cache_ref, _compiled.reshape_and_cache)
prefill_attention = Op(prefill_attention_ref, triton=_triton_prefill_attention)
paged_attention = Op(paged_attention_ref, _compiled.paged_attention, "paged_attention_v1",
                     triton=_triton_paged_attention, compiled_takes=_compiled.paged_attention_takes)
copy_blocks = Op(copy_blocks_ref, _compiled.copy_blocks)
swap_blocks = Op(swap_blocks_ref, _compiled.swap_blocks, device_of=_swap_device)
skinny_matmul = Op(skinny_matmul_ref, _compiled.skinny_matmul,
                   compiled_takes=_compiled.skinny_matmul_takes)
greedy_sample = Op(greedy_sample_ref, _compiled.greedy_sample)
wna16_matmul = Op(wna16_matmul_ref, _compiled_quantized.wna16_matmul,
                  compiled_takes=_compiled_quantized.wna16_matmul_takes,
                  triton=_triton_wna16_matmul)
dequantize_wna16 = Op(dequantize_wna16_ref, _compiled_quantized.dequantize_wna16)
lut_matmul = Op(lut_matmul_ref, _compiled_quantized.lut_matmul,
                compiled_takes=_compiled_quantized.lut_matmul_takes, triton=_triton_lut_matmul)
dequantize_lut = Op(dequantize_lut_ref, _compiled_quantized.dequantize_lut)

__all__ = ["rms_norm", "fused_add_rms_norm", "rotary_embedding", "rotary_and_cache",
           "silu_and_mul", "gelu_and_mul", "gelu_tanh_and_mul", "reshape_and_cache",
           "prefill_attention", "paged_attention", "copy_blocks", "swap_blocks", "skinny_matmul",
           "greedy_sample", "wna16_matmul", "dequantize_wna16", "lut_matmul", "dequantize_lut"]
