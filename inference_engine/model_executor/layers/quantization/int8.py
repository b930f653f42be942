"""INT8 W8A8 (compressed-tensors' `int-quantized`): int8 weights with a scale per output channel
(or per tensor), the input quantized to int8 at each call, per token (dynamic) or with the
checkpoint's per-tensor scale (static), both symmetric; one int8 matmul accumulating in int32
(torch._int_mm), scaled back per row and column.

    weight        int8    [N, K]
    weight_scale  float32 [N, 1] or [1]   (spread over each fused part's rows: fp8_checkpoint.py)
    input_scale   float32 [1]             (static only; fused parts take the largest)
"""
import torch
import torch.nn.functional as F
from torch import nn

from inference_engine.model_executor.layers.quantization.base import LinearMethod
from inference_engine.model_executor.layers.quantization.fp8_checkpoint import (
    register_scaled_weight)

INT8_MAX = 127.0
_CUDA_MIN_ROWS = 17  # torch._int_mm on CUDA wants more than 16 rows


def quantize_int8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of x in int8 with its own scale: (values [M, K], scales [M, 1] float32)."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / INT8_MAX
    return (x.float() / scale).round().clamp(-128, 127).to(torch.int8), scale


def int8_matmul(x_q: torch.Tensor, x_scale: torch.Tensor, weight: torch.Tensor,
                weight_scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(x_q * x_scale) (W * weight_scale)^T: x_q [M, K] int8 with [M, 1] scales, W [N, K] int8
    with [N] scales."""
    rows = x_q.shape[0]
    if x_q.is_cuda and rows < _CUDA_MIN_ROWS:
        x_q = F.pad(x_q, (0, 0, 0, _CUDA_MIN_ROWS - rows))
    acc = torch._int_mm(x_q, weight.t())[:rows]
    return (acc.float() * x_scale * weight_scale.view(1, -1)).to(dtype)


class Int8W8A8Method(LinearMethod):
    def __init__(self, static_input: bool):
        self.static_input = static_input

    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        register_scaled_weight(layer, input_size, output_size, torch.int8, self.static_input, 8)

    def apply(self, layer: nn.Module, x: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        if self.static_input:
            x_scale = layer.input_scale.expand(x.shape[0]).unsqueeze(1).contiguous()
            x_q = (x.float() / x_scale).round().clamp(-128, 127).to(torch.int8)
        else:
            x_q, x_scale = quantize_int8_rows(x)
        y = int8_matmul(x_q, x_scale, layer.weight, layer.weight_scale, x.dtype)
        return y if bias is None else y + bias
