"""SqueezeLLM checkpoints: non-uniform 4-bit weights, each a 4-bit index into its output
channel's look-up table of 16 values (the paper's sensitivity-weighted k-means centroids).

A layer of K inputs and N outputs stores:

    qweight       int32 [K / 8, N]  index i[k, n]: bits 4 (k % 8).. of qweight[k // 8, n]
    lookup_table  half  [N, 16]

    W[n, k] = lookup_table[n, i[k, n]]

Once loaded, the indices are repacked along the input (a row of W per output, as the integer
formats' layout in ops/quantized_linear.py); a decode step multiplies through the look-up
kernels (CPU: csrc/cpu/lut_gemm.cpp; GPU: csrc/gpu/lut_kernels.cu up to 16 rows, Triton
beyond), a prompt's rows through the looked-up weight's dense matmul.
"""
import torch
from torch import nn

from inference_engine import ops
from inference_engine.model_executor.layers.quantization.base import (LinearMethod,
                                                                      QuantizationConfig,
                                                                      shard_parameter)
from inference_engine.model_executor.layers.quantization.wna16 import packed_rows_limit
from inference_engine.ops.quantized_linear import pack_int32, unpack_int32


def dequantize_squeezellm(qweight: torch.Tensor, lookup_table: torch.Tensor) -> torch.Tensor:
    """W [N, K] in the table's dtype, contiguous."""
    index = unpack_int32(qweight, 4, 0).t().long()  # [N, K]
    return torch.gather(lookup_table, 1, index)


class SqueezeLLMLinearMethod(LinearMethod):
    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        if input_size % 8:
            raise ValueError(f"SqueezeLLM cannot split a layer of {input_size} inputs on this "
                             "rank: fewer tensor-parallel ranks may")
        shard_parameter(layer, "qweight", (input_size // 8, output_size), torch.int32,
                        input_dim=0, output_dim=1, packed_dim=0, pack_factor=8)
        shard_parameter(layer, "lookup_table", (output_size, 16), params_dtype, output_dim=0)

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        indices = unpack_int32(layer.qweight.data, 4, 0).t().to(torch.uint8)  # [N, K]
        layer.qweight = nn.Parameter(pack_int32(indices, 4, 1), requires_grad=False)

    def apply(self, layer: nn.Module, x: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        if x.shape[0] <= packed_rows_limit(x):
            return ops.lut_matmul(x, layer.qweight, layer.lookup_table, bias)
        weight = ops.dequantize_lut(layer.qweight, layer.lookup_table)
        return torch.nn.functional.linear(x, weight.to(x.dtype), bias)


class SqueezeLLMConfig(QuantizationConfig):
    name = "squeezellm"

    @classmethod
    def from_config(cls, config: dict) -> "SqueezeLLMConfig":
        if not config:
            raise ValueError("--quantization squeezellm needs a SqueezeLLM checkpoint (its "
                             "config.json's quantization_config)")
        bits = int(config.get("wbits", config.get("bits", 4)))
        if bits != 4:
            raise ValueError(f"SqueezeLLM with {bits} bits is not supported (4 is)")
        return cls()

    def linear_method(self, layer: nn.Module) -> LinearMethod:
        return SqueezeLLMLinearMethod()
