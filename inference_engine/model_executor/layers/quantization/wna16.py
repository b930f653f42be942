"""What the integer-weight methods share once their tensors are loaded: each format (GPTQ, AWQ,
compressed-tensors pack-quantized) unpacks its own layout, and the layer is repacked into the
one layout of ops/quantized_linear.py, which the W4A16 / W8A16 kernels multiply with.

Act-order checkpoints (GPTQ's desc_act) quantized the inputs in another order: the layer's
inputs are put in group order once (`input_order`), and each call reads x in that order, so
every group is a contiguous run. Where a rank's inputs do not fall into whole groups (act-order
split over ranks by the input), the layer keeps a group index per input and multiplies through
the plain-PyTorch path.
"""
import torch
from torch import nn

from inference_engine import ops
from inference_engine.model_executor.layers.quantization.base import LinearMethod
from inference_engine.ops.quantized_linear import pack_int32, unpack_int32

# Up to this many rows the product runs on the packed weight; beyond, the weight is dequantized
# once per call and multiplied by the dense matmul (a prompt's rows amortize the dequantization).
# On the CPU, its kernel's (at 64 rows as fast as a float32 matmul on the unpacked weight, on the
# 2-core machine); on a GPU, our kernel's up to 16 rows, then Triton's, whose tiles read the
# packed weight once per 64 rows: a decode step's batch, where writing the whole dequantized
# weight every step would cost more than the matmul.
PACKED_MAX_ROWS = {"cpu": 64, "cuda": 256}


def packed_rows_limit(x: torch.Tensor) -> int:
    return PACKED_MAX_ROWS.get(x.device.type, 16)


def _replace(layer: nn.Module, name: str, value: torch.Tensor | None) -> None:
    """Drops the layer's parameter `name` (if any), then registers `value` (if any) as it."""
    layer._parameters.pop(name, None)
    if value is not None:
        layer.register_parameter(name, nn.Parameter(value, requires_grad=False))


class WNA16Method(LinearMethod):
    """Base of the integer-weight methods: a subclass registers its checkpoint's tensors
    (create_weights) and says what they hold (`unpacked`)."""

    bits: int

    def unpacked(self, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor | None]:
        """(q [N, K], zeros [N, G], scales [N, G], g_idx [K] or None): the unsigned integer
        weights and zero points (any integer dtype), the scales, and the group of each input
        where it is not k // (K / G)."""
        raise NotImplementedError

    def checkpoint_tensors(self) -> tuple[str, ...]:
        """The names create_weights registered, dropped once repacked."""
        raise NotImplementedError

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        q, zeros, scales, g_idx = self.unpacked(layer)
        num_inputs, num_groups = q.shape[1], scales.shape[1]
        order = None
        if g_idx is not None:
            order = torch.argsort(g_idx, stable=True)
            g_idx, q = g_idx[order], q[:, order]
            if torch.equal(order, torch.arange(num_inputs, device=order.device)):
                order = None
            if num_inputs % num_groups == 0 and torch.equal(g_idx, torch.arange(
                    num_inputs, device=g_idx.device) // (num_inputs // num_groups)):
                g_idx = None  # each group a run of K / G inputs
        for name in self.checkpoint_tensors():
            _replace(layer, name, None)
        _replace(layer, "qweight", pack_int32(q.to(torch.uint8), self.bits, 1))
        _replace(layer, "scales", scales.contiguous())
        _replace(layer, "zeros", zeros.to(scales.dtype).contiguous())
        layer.input_order = order
        layer.group_index = None if g_idx is None else g_idx.to(torch.int64)
        layer.group_size = num_inputs // num_groups

    def apply(self, layer: nn.Module, x: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        if layer.input_order is not None:
            x = x.index_select(-1, layer.input_order)
        if layer.group_index is not None:  # groups that are not runs: the weight, gathered
            g = layer.group_index
            q = unpack_int32(layer.qweight, self.bits, 1).to(layer.scales.dtype)
            weight = (q - layer.zeros[:, g]) * layer.scales[:, g]
            return torch.nn.functional.linear(x, weight.to(x.dtype), bias)
        if x.shape[0] <= packed_rows_limit(x):
            return ops.wna16_matmul(x, layer.qweight, layer.scales, layer.zeros, self.bits,
                                    layer.group_size, bias)
        weight = ops.dequantize_wna16(layer.qweight, layer.scales, layer.zeros, self.bits,
                                      layer.group_size)
        return torch.nn.functional.linear(x, weight.to(x.dtype), bias)
