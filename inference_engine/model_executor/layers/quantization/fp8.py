"""FP8 weights, quantized on load (vLLM's `--quantization fp8` for bf16/fp16 checkpoints):
every linear layer's weight in float8 e4m3 with a scale per output channel, its input
quantized per token at each call, one scaled matmul (torch._scaled_mm: FP8 tensor cores on
Hopper). Half the weights' memory, which goes to the KV cache, and half the bytes each decode
step reads."""
import logging

import torch
from torch import nn

from inference_engine.model_executor.layers.quantization.base import set_weight_attrs
from inference_engine.model_executor.layers.quantization.unquantized import UnquantizedLinearMethod

logger = logging.getLogger(__name__)

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
_KEPT_SHAPES: set[tuple[int, ...]] = set()


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of `t` [R, C] in FP8 with its own scale: (values [R, C], scales [R, 1] float32),
    t ~ values * scales. An all-zero row gets a tiny scale (and zeros)."""
    scale = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def scaled_matmul(x_q: torch.Tensor, x_scale: torch.Tensor, weight: torch.Tensor,
                  weight_scale: torch.Tensor, bias: torch.Tensor | None,
                  dtype: torch.dtype) -> torch.Tensor:
    """(x_q * x_scale) (W * weight_scale)^T (+ b) in `dtype`: FP8 x_q [M, K] with row scales
    [M, 1], FP8 W [N, K] with column scales [1, N], accumulated in float32. On CUDA the output
    is bf16 (what the row-wise scaled matmul writes), then cast."""
    out_dtype = torch.bfloat16 if x_q.is_cuda else dtype
    y = torch._scaled_mm(x_q, weight.t(), scale_a=x_scale, scale_b=weight_scale,
                         out_dtype=out_dtype).to(dtype)
    return y if bias is None else y + bias


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
               bias: torch.Tensor | None) -> torch.Tensor:
    """x W^T (+ b) for FP8 `weight` [N, K] with scales `weight_scale` [1, N], x [M, K]
    quantized per row."""
    x_q, x_scale = quantize_rows(x)
    return scaled_matmul(x_q, x_scale, weight, weight_scale, bias, x.dtype)


def fp8_linear_reference(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                         bias: torch.Tensor | None) -> torch.Tensor:
    """fp8_linear in plain PyTorch: both sides dequantized, multiplied in float32."""
    x_q, x_scale = quantize_rows(x)
    y = (x_q.float() * x_scale) @ (weight.float() * weight_scale.t()).t()
    y = y.to(x.dtype)
    return y if bias is None else y + bias


def can_quantize(layer: nn.Module) -> bool:
    """The scaled matmul needs both of the weight's dimensions to be multiples of 16."""
    out_size, in_size = layer.weight.shape
    return out_size % 16 == 0 and in_size % 16 == 0


class Fp8LinearMethod(UnquantizedLinearMethod):
    """Loads the checkpoint's weight as it is, then puts it in FP8 with a scale per output
    channel (`weight_scale` [1, N]); a layer whose shape the scaled matmul can't take keeps it."""

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        layer.weight_scale = None
        if not can_quantize(layer):
            shape = tuple(layer.weight.shape)
            if shape not in _KEPT_SHAPES:  # once per shape, not once per layer
                _KEPT_SHAPES.add(shape)
                logger.warning("fp8: linear layers of shape %s keep their weights (a dimension "
                               "not a multiple of 16)", shape)
            return
        values, scale = quantize_rows(layer.weight.data)
        layer.weight = set_weight_attrs(nn.Parameter(values, requires_grad=False),
                                        output_dim=0, input_dim=1)
        layer.weight_scale = scale.t().contiguous()  # [1, N]: the scaled matmul's column scales

    def apply(self, layer: nn.Module, x: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        if getattr(layer, "weight_scale", None) is None:
            return super().apply(layer, x, bias)
        return fp8_linear(x, layer.weight, layer.weight_scale, bias)
