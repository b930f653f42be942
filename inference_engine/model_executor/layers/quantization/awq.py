"""AWQ checkpoints (AutoAWQ's GEMM layout, llm-awq): 4-bit weights in groups along the input,
each group with a scale and a zero point per output, packed along the output.

A layer of K inputs and N outputs stores, eight 4-bit values per int32:

    qweight int32 [K, N / 8]   q[k, n] for the eight outputs n = 8j..8j+7 of qweight[k, j]
    qzeros  int32 [G, N / 8]   z[g, n], packed the same way
    scales  half  [G, N]

    W[n, k] = scales[g, n] * (q[k, n] - z[g, n]) with g = k // group_size

Inside each int32 the outputs are interleaved: bits 4i..4i+3 hold output AWQ_ORDER[i] of its
eight (AutoAWQ's order, which its kernels read in pairs). No act-order: groups follow the input.
Once loaded, a layer is repacked into the integer-weight layout the kernels read (wna16.py).
"""
import torch
from torch import nn

from inference_engine.model_executor.layers.quantization.base import (LinearMethod,
                                                                      QuantizationConfig,
                                                                      shard_parameter)
from inference_engine.model_executor.layers.quantization.wna16 import WNA16Method
from inference_engine.ops.quantized_linear import unpack_int32

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # output of each nibble, lowest first
# Output j of eight sits in nibble AWQ_NIBBLE[j] (AWQ_ORDER's inverse).
AWQ_NIBBLE = tuple(AWQ_ORDER.index(j) for j in range(8))


def unpack_awq(packed: torch.Tensor) -> torch.Tensor:
    """[R, C] int32 -> [R, 8C] 4-bit values in output order."""
    nibbles = unpack_int32(packed, 4, 1).unflatten(1, (-1, 8))  # [R, C, nibble]
    index = torch.tensor(AWQ_NIBBLE, device=packed.device)
    return nibbles.index_select(2, index).flatten(1)


def dequantize_awq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                   group_size: int) -> torch.Tensor:
    """W [N, K] in the scales' dtype, contiguous (as an unquantized weight: see gptq.py)."""
    q, zeros = unpack_awq(qweight), unpack_awq(qzeros)  # [K, N], [G, N]
    groups = torch.arange(q.shape[0], device=q.device) // group_size
    return ((q - zeros[groups]).to(scales.dtype) * scales[groups]).t().contiguous()


class AWQLinearMethod(WNA16Method):
    bits = 4

    def __init__(self, config: "AWQConfig"):
        self.config = config

    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        group = self.config.group_size
        if input_size % group or output_size % 8:
            raise ValueError(f"AWQ (groups of {group}) cannot split a layer of {input_size} "
                             f"inputs and {output_size} outputs on this rank: fewer "
                             "tensor-parallel ranks may")
        groups = input_size // group
        shard_parameter(layer, "qweight", (input_size, output_size // 8), torch.int32,
                        input_dim=0, output_dim=1, packed_dim=1, pack_factor=8)
        shard_parameter(layer, "qzeros", (groups, output_size // 8), torch.int32,
                        input_dim=0, output_dim=1, packed_dim=1, pack_factor=8)
        shard_parameter(layer, "scales", (groups, output_size), params_dtype,
                        input_dim=0, output_dim=1)

    def checkpoint_tensors(self) -> tuple[str, ...]:
        return ("qweight", "qzeros", "scales")

    def unpacked(self, layer: nn.Module):
        return (unpack_awq(layer.qweight).t(), unpack_awq(layer.qzeros).t(),
                layer.scales.data.t(), None)


class AWQConfig(QuantizationConfig):
    name = "awq"

    def __init__(self, bits: int, group_size: int, zero_point: bool, version: str):
        if bits != 4:
            raise ValueError(f"AWQ with {bits} bits is not supported (4 is)")
        if version.lower() != "gemm":
            raise ValueError(f"AWQ version {version!r} is not supported (the GEMM layout is)")
        if not zero_point:
            raise ValueError("AWQ without zero points is not supported")
        if group_size <= 0:
            raise ValueError(f"AWQ group_size must be positive, got {group_size}")
        self.group_size = group_size

    @classmethod
    def from_config(cls, config: dict) -> "AWQConfig":
        if not config:
            raise ValueError("--quantization awq needs an AWQ checkpoint (its config.json's "
                             "quantization_config)")
        return cls(int(config.get("bits", config.get("w_bit", 4))),
                   int(config.get("group_size", config.get("q_group_size", 128))),
                   bool(config.get("zero_point", True)), str(config.get("version", "gemm")))

    def linear_method(self, layer: nn.Module) -> LinearMethod:
        return AWQLinearMethod(self)
