"""FP8 weights, quantized on load (vLLM's `--quantization fp8` for bf16/fp16 checkpoints):
every linear layer's weight in float8 e4m3 with a scale per output channel, its input
quantized per token at each call, one scaled matmul (torch._scaled_mm: FP8 tensor cores on
Hopper). Half the weights' memory, which goes to the KV cache, and half the bytes each decode
step reads."""
import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of `t` [R, C] in FP8 with its own scale: (values [R, C], scales [R, 1] float32),
    t ~ values * scales. An all-zero row gets a tiny scale (and zeros)."""
    scale = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
               bias: torch.Tensor | None) -> torch.Tensor:
    """x W^T (+ b) for FP8 `weight` [N, K] with scales `weight_scale` [1, N]: x [M, K] is
    quantized per row, the product accumulates in float32 and scales back per row and column.
    On CUDA the output is bf16 (what the row-wise scaled matmul writes), cast to x's dtype."""
    x_q, x_scale = quantize_rows(x)
    out_dtype = torch.bfloat16 if x.is_cuda else x.dtype
    y = torch._scaled_mm(x_q, weight.t(), scale_a=x_scale, scale_b=weight_scale,
                         out_dtype=out_dtype).to(x.dtype)
    return y if bias is None else y + bias


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


def quantize_linear_layers(model: nn.Module) -> int:
    """Puts the weight of every linear layer of `model` in FP8 but the experts' routers (and
    those whose shapes the scaled matmul can't take); returns how many were quantized."""
    from inference_engine.model_executor.layers.linear import LinearBase
    done, skipped = 0, []
    for name, layer in model.named_modules():
        if not isinstance(layer, LinearBase) or name.endswith(".gate"):
            continue  # (a mixture of experts' router: small, and its logits pick the experts)
        if not can_quantize(layer):
            skipped.append(name)
            continue
        values, scale = quantize_rows(layer.weight.data)
        layer.weight = nn.Parameter(values, requires_grad=False)
        layer.weight_scale = scale.t().contiguous()  # [1, N]: the scaled matmul's column scales
        done += 1
    if skipped:
        logger.warning("fp8: %d linear layers keep their weights (a dimension not a multiple "
                       "of 16): %s", len(skipped), ", ".join(skipped[:4]))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the bf16 weights' memory, for the KV cache
    return done
