"""Plain weights: W [output_size, input_size] in the model's dtype."""
import torch
import torch.nn.functional as F
from torch import nn

from inference_engine import ops
from inference_engine.model_executor.layers.quantization.base import LinearMethod, shard_parameter
from inference_engine.ops._compiled import SKINNY_MAX_ROWS


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T (+ b); a step of a few rows (late decode steps) takes the few-row op where it applies."""
    if x.shape[0] <= SKINNY_MAX_ROWS and x.is_cuda:
        return ops.skinny_matmul(x, weight, bias)
    return F.linear(x, weight, bias)


class UnquantizedLinearMethod(LinearMethod):
    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        shard_parameter(layer, "weight", (output_size, input_size), params_dtype,
                        output_dim=0, input_dim=1)

    def apply(self, layer: nn.Module, x: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        return linear(x, layer.weight, bias)
