"""Normalization layers: RMSNorm (its arithmetic lives in inference_engine.ops) and LayerNorm."""
import torch
import torch.nn.functional as F
from torch import nn

from inference_engine import ops


class RMSNorm(nn.Module):
    """RMSNorm with an optional fused residual add: forward(x, residual) returns
    (norm(x + residual), x + residual)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size), requires_grad=False)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        if residual is None:
            return ops.rms_norm(x, self.weight, self.eps)
        return ops.fused_add_rms_norm(x, residual, self.weight, self.eps)

    def forward_native(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        if residual is None:
            return ops.rms_norm_ref(x, self.weight, self.eps)
        return ops.fused_add_rms_norm_ref(x, residual, self.weight, self.eps)


class LayerNorm(nn.Module):
    """LayerNorm with a weight and a bias (Bloom). torch's own layer_norm already is one fused
    kernel on every device, so there is no custom op behind it."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(hidden_size), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
