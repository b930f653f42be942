"""GPTQ checkpoints (AutoGPTQ, GPTQModel, optimum): integer weights of 4 or 8 bits in groups
along the input, each group with a scale and a zero point per output.

A layer of K inputs and N outputs stores, with p = 32 / bits values per int32:

    qweight int32 [K / p, N]  q[k, n]: bits (k % p) * bits.. of qweight[k // p, n]
    qzeros  int32 [G, N / p]  z[g, n]: bits (n % p) * bits.. of qzeros[g, n // p]
    scales  half  [G, N]
    g_idx   int32 [K]         the group of input k: k // group_size, unless `desc_act`
                              quantized the inputs in another order

    W[n, k] = scales[g, n] * (q[k, n] - z[g, n]) with g = g_idx[k]

G = K / group_size (1 for group_size -1: a scale per output). The original format
(`checkpoint_format` "gptq") stores each zero point minus one, in its bits (so that a zero of 0
wraps to the largest value); GPTQModel's "gptq_v2" stores it as it is.

Once loaded, a layer is repacked into the integer-weight layout the kernels read (wna16.py),
its inputs put in group order where act-order shuffled them.
"""
import torch
from torch import nn

from inference_engine.model_executor.layers.quantization.base import (LinearMethod,
                                                                      QuantizationConfig,
                                                                      shard_parameter)
from inference_engine.model_executor.layers.quantization.wna16 import WNA16Method
from inference_engine.ops.quantized_linear import unpack_int32


def unpack_gptq(qweight: torch.Tensor, qzeros: torch.Tensor, bits: int,
                zeros_minus_one: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(q [K, N], zero points [G, N]) as the checkpoint means them."""
    zeros = unpack_int32(qzeros, bits, 1)
    if zeros_minus_one:
        zeros = (zeros + 1) & ((1 << bits) - 1)
    return unpack_int32(qweight, bits, 0), zeros


def dequantize_gptq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                    g_idx: torch.Tensor, bits: int, zeros_minus_one: bool) -> torch.Tensor:
    """W [N, K] in the scales' dtype (the format's description, in plain PyTorch)."""
    q, zeros = unpack_gptq(qweight, qzeros, bits, zeros_minus_one)
    groups = g_idx.long()
    return ((q - zeros[groups]).to(scales.dtype) * scales[groups]).t().contiguous()


class GPTQLinearMethod(WNA16Method):
    def __init__(self, config: "GPTQConfig"):
        self.config, self.bits = config, config.bits

    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        c = self.config
        pack = 32 // c.bits
        group = input_size if c.group_size == -1 else c.group_size
        if input_size % group or input_size % pack or output_size % pack:
            raise ValueError(f"GPTQ ({c.bits} bits, groups of {c.group_size}) cannot split a "
                             f"layer of {input_size} inputs and {output_size} outputs on this "
                             "rank: fewer tensor-parallel ranks may")
        sharded = layer.input_sharded and layer.tp_size > 1
        # Scales and zeros split with the input where each rank's inputs are whole groups; with
        # act-order (g_idx in another order), or one group, every rank keeps them all.
        groups_split = c.group_size != -1 and not (c.desc_act and sharded)
        if c.group_size == -1:
            num_groups = 1
        else:
            num_groups = (input_size if groups_split else input_size * layer.tp_size) // group
        input_dim = 0 if groups_split else None
        shard_parameter(layer, "qweight", (input_size // pack, output_size), torch.int32,
                        input_dim=0, output_dim=1, packed_dim=0, pack_factor=pack)
        shard_parameter(layer, "qzeros", (num_groups, output_size // pack), torch.int32,
                        input_dim=input_dim, output_dim=1, packed_dim=1, pack_factor=pack)
        shard_parameter(layer, "scales", (num_groups, output_size), params_dtype,
                        input_dim=input_dim, output_dim=1)
        g_idx = shard_parameter(layer, "g_idx", (input_size,), torch.int32, input_dim=0)
        # Checkpoints without act-order may leave g_idx out: the natural order.
        first = layer.tp_rank * input_size if sharded else 0
        g_idx.data.copy_(torch.arange(first, first + input_size, dtype=torch.int32) // group
                         if c.group_size != -1 else torch.zeros(input_size, dtype=torch.int32))
        # g_idx counts the whole input's groups; a rank holding only its own groups' scales
        # counts from its first (process_weights_after_loading).
        layer.first_group = first // group if groups_split else 0

    def checkpoint_tensors(self) -> tuple[str, ...]:
        return ("qweight", "qzeros", "scales", "g_idx")

    def unpacked(self, layer: nn.Module):
        q, zeros = unpack_gptq(layer.qweight, layer.qzeros, self.bits,
                               self.config.checkpoint_format == "gptq")
        return q.t(), zeros.t(), layer.scales.data.t(), layer.g_idx.data - layer.first_group


class GPTQConfig(QuantizationConfig):
    name = "gptq"

    def __init__(self, bits: int, group_size: int, desc_act: bool, sym: bool,
                 checkpoint_format: str):
        if bits not in (4, 8):
            raise ValueError(f"GPTQ with {bits} bits is not supported (4 and 8 are)")
        if group_size != -1 and group_size <= 0:
            raise ValueError(f"GPTQ group_size must be positive or -1, got {group_size}")
        if checkpoint_format not in ("gptq", "gptq_v2"):
            raise ValueError(f"GPTQ checkpoint_format {checkpoint_format!r} is not supported "
                             "(gptq and gptq_v2 are)")
        self.bits, self.group_size, self.desc_act, self.sym = bits, group_size, desc_act, sym
        self.checkpoint_format = checkpoint_format

    @classmethod
    def from_config(cls, config: dict) -> "GPTQConfig":
        if not config:
            raise ValueError("--quantization gptq needs a GPTQ checkpoint (its config.json's "
                             "quantization_config)")
        return cls(int(config.get("bits", 4)), int(config.get("group_size", 128)),
                   bool(config.get("desc_act", False)), bool(config.get("sym", True)),
                   config.get("checkpoint_format", "gptq"))

    def linear_method(self, layer: nn.Module) -> LinearMethod:
        return GPTQLinearMethod(self)
