"""Linear layers that shard over tensor-parallel ranks.

Each parameter carries a `weight_loader` that copies this rank's slice of a checkpoint tensor
into it; fused layers (QKV, gate-up) take a `shard_id` naming which part the tensor is.
"""
import torch
from torch import nn

from inference_engine.distributed.parallel_state import all_reduce, get_tp_rank, get_tp_world_size
from inference_engine.model_executor.layers.quantization import linear_method_for
from inference_engine.model_executor.layers.quantization.base import shard_parameter
from inference_engine.model_executor.layers.quantization.unquantized import linear

__all__ = ["ColumnParallelLinear", "LinearBase", "MergedColumnParallelLinear",
           "QKVParallelLinear", "ReplicatedLinear", "RowParallelLinear", "linear"]


def _divide(a: int, b: int) -> int:
    if a % b:
        raise ValueError(f"{a} is not divisible by the tensor-parallel size {b}")
    return a // b


def _narrow_packed(param: nn.Parameter, dim: int, offset: int, size: int) -> tuple[int, int]:
    """An (offset, size) along `dim` in values, in the parameter's stored elements."""
    if getattr(param, "packed_dim", None) == dim:
        return offset // param.pack_factor, size // param.pack_factor
    return offset, size


class LinearBase(nn.Module):
    """y = x W^T (+ b) over this rank's `input_size` x `output_size` shard. How W is held (plain,
    FP8, packed integers with scales) is the layer's `quant_method`'s (layers/quantization/):
    the model's quantization's, unless `quantize` is False."""

    input_sharded = False  # whether ranks split the input (row parallel)
    output_sharded = False  # whether ranks split the output (column parallel)

    def __init__(self, input_size: int, output_size: int, bias: bool, quantize: bool = True):
        super().__init__()
        self.tp_rank, self.tp_size = get_tp_rank(), get_tp_world_size()
        self.input_size, self.output_size = input_size, output_size
        self.params_dtype = torch.get_default_dtype()  # the activations' (a quantized W differs)
        self.quant_method = linear_method_for(self, quantize)
        self.quant_method.create_weights(self, input_size, output_size, self.params_dtype)
        if bias:
            shard_parameter(self, "bias", (output_size,), self.params_dtype, output_dim=0)
        else:
            self.register_parameter("bias", None)
        self.lora = None  # LoRA slots (lora/layers.py), when the engine serves adapters

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor) -> None:
        param.data.copy_(loaded)

    def matmul(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return self.quant_method.apply(self, x, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.matmul(x, self.bias)
        return y if self.lora is None else self.lora.add_to(x, y)


class ReplicatedLinear(LinearBase):
    """The whole layer on every rank."""


class ColumnParallelLinear(LinearBase):
    """Splits the output dimension: each rank computes a slice of y."""

    output_sharded = True

    def __init__(self, input_size: int, output_size: int, bias: bool = False,
                 quantize: bool = True):
        super().__init__(input_size, _divide(output_size, get_tp_world_size()), bias, quantize)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor) -> None:
        dim = getattr(param, "output_dim", None)
        if dim is None:  # the same on every rank (a group index of the unsplit input)
            param.data.copy_(loaded)
            return
        size = param.shape[dim]
        param.data.copy_(loaded.narrow(dim, self.tp_rank * size, size))


class MergedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel layers fused along the output (gate and up projections)."""

    def __init__(self, input_size: int, output_sizes: list[int], bias: bool = False):
        self.output_sizes = output_sizes
        super().__init__(input_size, sum(output_sizes), bias)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id: int) -> None:
        size = self.output_sizes[shard_id] // self.tp_size
        offset = sum(self.output_sizes[:shard_id]) // self.tp_size
        self._load_shard(param, loaded, offset, size, self.tp_rank)

    def _load_shard(self, param: nn.Parameter, loaded: torch.Tensor, offset: int, size: int,
                    index: int) -> None:
        """Copies block `index` of `size` output values of `loaded` to `offset` in `param`."""
        dim = getattr(param, "output_dim", None)
        if dim is None:  # shared by the fused parts (they read the same input)
            param.data.copy_(loaded)
            return
        offset, size = _narrow_packed(param, dim, offset, size)
        param.data.narrow(dim, offset, size).copy_(loaded.narrow(dim, index * size, size))


class QKVParallelLinear(MergedColumnParallelLinear):
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
        q, kv = self.num_heads * head_size * tp, self.num_kv_heads * head_size * tp
        super().__init__(hidden_size, [q, kv, kv], bias)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id: str) -> None:
        q_size, kv_size = self.num_heads * self.head_size, self.num_kv_heads * self.head_size
        if shard_id == "q":
            offset, size, index = 0, q_size, self.tp_rank
        else:
            offset = q_size if shard_id == "k" else q_size + kv_size
            size, index = kv_size, self.tp_rank // self.kv_replicas
        self._load_shard(param, loaded, offset, size, index)


class RowParallelLinear(LinearBase):
    """Splits the input dimension: each rank holds a partial sum, all-reduced afterwards."""

    input_sharded = True

    def __init__(self, input_size: int, output_size: int, bias: bool = False,
                 quantize: bool = True):
        super().__init__(_divide(input_size, get_tp_world_size()), output_size, bias, quantize)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor) -> None:
        dim = getattr(param, "input_dim", None)
        if dim is None:  # the bias (added once, after the reduction), or a tensor all ranks need
            param.data.copy_(loaded)
            return
        size = param.shape[dim]
        param.data.copy_(loaded.narrow(dim, self.tp_rank * size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.matmul(x, None)
        if self.lora is not None:  # each rank's share of the delta, summed with the rest
            y = self.lora.add_to(x, y)
        y = all_reduce(y)
        return y + self.bias if self.bias is not None else y
