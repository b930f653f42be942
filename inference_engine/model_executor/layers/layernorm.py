"""RMSNorm layer; the arithmetic lives in inference_engine.ops."""
import torch
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
