"""Activation layers: gated ones (arithmetic in inference_engine.ops) and plain GELU."""
import torch
import torch.nn.functional as F
from torch import nn

from inference_engine import ops

_ACTIVATIONS = {
    "silu": (ops.silu_and_mul, ops.silu_and_mul_ref),
    "gelu": (ops.gelu_and_mul, ops.gelu_and_mul_ref),
    "gelu_pytorch_tanh": (ops.gelu_tanh_and_mul, ops.gelu_tanh_and_mul_ref),
}


class GatedActivation(nn.Module):
    """act(gate) * up for x = [gate | up] along the last dimension."""

    def __init__(self, hidden_act: str = "silu"):
        super().__init__()
        if hidden_act not in _ACTIVATIONS:
            raise ValueError(f"unsupported activation {hidden_act!r}; supported: {list(_ACTIVATIONS)}")
        self.op, self.ref = _ACTIVATIONS[hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self.ref(x)


class GeluTanh(nn.Module):
    """GELU with the tanh approximation, not gated (Bloom's MLP). torch's gelu is one elementwise
    kernel already, so there is no custom op behind it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")
