"""Linear layers that shard over tensor-parallel ranks.

Each parameter carries a `weight_loader` that copies this rank's slice of a checkpoint tensor
into it; fused layers (QKV, gate-up) take a `shard_id` naming which part the tensor is.
"""
import torch
import torch.nn.functional as F
from torch import nn

from inference_engine import ops
from inference_engine.distributed.parallel_state import all_reduce, get_tp_rank, get_tp_world_size
from inference_engine.model_executor.layers.quantization.fp8 import fp8_linear
from inference_engine.ops._compiled import SKINNY_MAX_ROWS


def _divide(a: int, b: int) -> int:
    if a % b:
        raise ValueError(f"{a} is not divisible by the tensor-parallel size {b}")
    return a // b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T (+ b); a step of a few rows (late decode steps) takes the few-row op where it applies."""
    if x.shape[0] <= SKINNY_MAX_ROWS and x.is_cuda:
        return ops.skinny_matmul(x, weight, bias)
    return F.linear(x, weight, bias)


class LinearBase(nn.Module):
    """y = x W^T (+ b) with W of shape [output_size, input_size] on this rank."""

    def __init__(self, input_size: int, output_size: int, bias: bool):
        super().__init__()
        self.tp_rank, self.tp_size = get_tp_rank(), get_tp_world_size()
        self.weight = nn.Parameter(torch.empty(output_size, input_size), requires_grad=False)
        self.weight.weight_loader = self.weight_loader
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(output_size), requires_grad=False)
            self.bias.weight_loader = self.weight_loader
        self.lora = None  # LoRA slots (lora/layers.py), when the engine serves adapters
        self.params_dtype = self.weight.dtype  # the activations' (an FP8 weight keeps it)
        self.weight_scale = None  # [1, output_size] with an FP8 weight (quantization/fp8.py)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor) -> None:
        param.data.copy_(loaded)

    def matmul(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.weight_scale is not None:
            return fp8_linear(x, self.weight, self.weight_scale, bias)
        return linear(x, self.weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.matmul(x, self.bias)
        return y if self.lora is None else self.lora.add_to(x, y)


class ReplicatedLinear(LinearBase):
    """The whole layer on every rank."""


class ColumnParallelLinear(LinearBase):
    """Splits the output dimension: each rank computes a slice of y."""

    def __init__(self, input_size: int, output_size: int, bias: bool = False):
        super().__init__(input_size, _divide(output_size, get_tp_world_size()), bias)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor) -> None:
        size = param.shape[0]
        param.data.copy_(loaded.narrow(0, self.tp_rank * size, size))


class MergedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel layers fused along the output (gate and up projections)."""

    def __init__(self, input_size: int, output_sizes: list[int], bias: bool = False):
        self.output_sizes = output_sizes
        super().__init__(input_size, sum(output_sizes), bias)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id: int) -> None:
        size = self.output_sizes[shard_id] // self.tp_size
        offset = sum(self.output_sizes[:shard_id]) // self.tp_size
        param.data.narrow(0, offset, size).copy_(loaded.narrow(0, self.tp_rank * size, size))


class QKVParallelLinear(ColumnParallelLinear):
    """Query, key and value projections fused; key/value heads are replicated when there are
    fewer of them than ranks."""

    def __init__(self, hidden_size: int, head_size: int, num_heads: int, num_kv_heads: int,
                 bias: bool = False):
        tp = get_tp_world_size()
        self.head_size = head_size
        self.num_heads = _divide(num_heads, tp)
        if num_kv_heads >= tp:
            self.num_kv_heads, self.kv_replicas = _divide(num_kv_heads, tp), 1
        else:
            self.num_kv_heads, self.kv_replicas = 1, _divide(tp, num_kv_heads)
        out = (self.num_heads + 2 * self.num_kv_heads) * head_size * tp
        super().__init__(hidden_size, out, bias)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id: str) -> None:
        q_size, kv_size = self.num_heads * self.head_size, self.num_kv_heads * self.head_size
        if shard_id == "q":
            offset, size, index = 0, q_size, self.tp_rank
        else:
            offset = q_size if shard_id == "k" else q_size + kv_size
            size, index = kv_size, self.tp_rank // self.kv_replicas
        param.data.narrow(0, offset, size).copy_(loaded.narrow(0, index * size, size))


class RowParallelLinear(LinearBase):
    """Splits the input dimension: each rank holds a partial sum, all-reduced afterwards."""

    def __init__(self, input_size: int, output_size: int, bias: bool = False):
        super().__init__(_divide(input_size, get_tp_world_size()), output_size, bias)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor) -> None:
        if param.dim() == 1:  # the bias is added once, after the reduction
            param.data.copy_(loaded)
            return
        size = param.shape[1]
        param.data.copy_(loaded.narrow(1, self.tp_rank * size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.matmul(x, None)
        if self.lora is not None:  # each rank's share of the delta, summed with the rest
            y = self.lora.add_to(x, y)
        y = all_reduce(y)
        return y + self.bias if self.bias is not None else y
