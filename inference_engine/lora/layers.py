"""LoRA on our linear layers, for batches that mix adapters.

An adapted layer holds every slot's weights stacked: A [S*L*R, in] and B [out, S*L*R] for its S
output slices (q, k and v of the fused QKV layer; gate and up; or one), L slots (max_loras) and
R = max_lora_rank; a smaller adapter's spare rows are zero, and a slice's B is zero outside that
slice's output rows. A step then adds, for every token whatever its adapter,

    delta = ((x A^T) * mask) B^T

where the mask keeps each token's own slot's columns (context.py). That is two matmuls of width
S*L*R (a few percent of the layer's own at the default rank) and no gather: the shapes depend
on nothing but the token count, and a token of the base model gets exactly zero.

Weights are placed with the layer's own `weight_loader`: A like the weight's input side (split
over ranks for a row-parallel layer), B like its output side (split for column-parallel ones,
at the fused slice's offset). A row-parallel layer adds its delta before the all-reduce: the sum
over ranks of (x_r A_r^T) B^T is (x A^T) B^T.
"""
import torch

from inference_engine.lora.context import get_lora_context
from inference_engine.model_executor.layers.linear import (ColumnParallelLinear, LinearBase,
                                                           MergedColumnParallelLinear,
                                                           QKVParallelLinear, RowParallelLinear)


def slices_of(layer: LinearBase) -> list:
    """The shard ids of the layer's fused output slices (None: one slice)."""
    if isinstance(layer, QKVParallelLinear):
        return ["q", "k", "v"]
    if isinstance(layer, MergedColumnParallelLinear):
        return list(range(len(layer.output_sizes)))
    return [None]


def checkpoint_slice_sizes(layer: LinearBase) -> list[int]:
    """The whole (unsharded) output size of each slice of a fused layer."""
    if isinstance(layer, QKVParallelLinear):
        kv = layer.num_kv_heads * layer.tp_size // layer.kv_replicas * layer.head_size
        return [layer.num_heads * layer.tp_size * layer.head_size, kv, kv]
    return list(layer.output_sizes)


def checkpoint_shapes(layer: LinearBase) -> dict:
    """The whole (unsharded) [out, in] that an adapter's B and A must cover for each piece
    set_slot takes: {shard id: (out, in)}, and None for a fused layer taken as one."""
    out_size, in_size = layer.output_size, layer.input_size
    if isinstance(layer, RowParallelLinear):
        in_size *= layer.tp_size
    slices = slices_of(layer)
    if slices == [None]:
        if isinstance(layer, ColumnParallelLinear):
            out_size *= layer.tp_size
        return {None: (out_size, in_size)}
    sizes = checkpoint_slice_sizes(layer)
    return {None: (sum(sizes), in_size), **{s: (size, in_size) for s, size in zip(slices, sizes)}}


class LoRASlots:
    def __init__(self, layer: LinearBase, max_loras: int, max_rank: int):
        self.layer = layer
        self.slices = slices_of(layer)
        self.max_loras, self.max_rank = max_loras, max_rank
        out_size, in_size = layer.output_size, layer.input_size
        width = len(self.slices) * max_loras * max_rank
        like = {"dtype": layer.params_dtype, "device": next(layer.parameters()).device}
        self.a = torch.zeros(width, in_size, **like)
        self.b = torch.zeros(out_size, width, **like)

    def set_slot(self, slot: int, pieces: dict | None) -> None:
        """Slot `slot` takes an adapter's pieces for this layer ({shard id: (A, scaled B)});
        None (or no piece for a slice) leaves zeros: no change to the layer."""
        if pieces is not None and None in pieces and len(self.slices) > 1:
            # Fused in the checkpoint too (Phi-3's qkv_proj, gate_up_proj): one A, and B's
            # rows split as the weight's are.
            a, b = pieces[None]
            parts = b.split(checkpoint_slice_sizes(self.layer))
            pieces = {shard: (a, part) for shard, part in zip(self.slices, parts)}
        for s, shard in enumerate(self.slices):
            start = (s * self.max_loras + slot) * self.max_rank
            self.a[start:start + self.max_rank].zero_()
            self.b[:, start:start + self.max_rank].zero_()
            if pieces is None or shard not in pieces:
                continue
            a, b = pieces[shard]
            r = a.shape[0]
            self.a[start:start + r] = self._place_a(a)
            self.b[:, start:start + r] = self._place_b(b, shard)

    def _place_a(self, a: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.layer, RowParallelLinear):
            return a
        local = torch.empty(a.shape[0], self.a.shape[1], dtype=a.dtype)
        local.input_dim = 1  # (how the layer's loader finds the dimension it splits)
        self.layer.weight_loader(local, a)  # this rank's share of the input
        return local

    def _place_b(self, b: torch.Tensor, shard) -> torch.Tensor:
        if isinstance(self.layer, RowParallelLinear):
            return b
        local = torch.zeros(self.b.shape[0], b.shape[1], dtype=b.dtype)
        local.output_dim = 0
        if shard is None:
            self.layer.weight_loader(local, b)
        else:
            self.layer.weight_loader(local, b, shard)  # at the slice's rows, zeros elsewhere
        return local

    def add_to(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y plus the LoRA delta of each token's adapter, in a step that has adapters."""
        context = get_lora_context()
        if context is None:
            return y
        shrunk = torch.mm(x, self.a.t()) * context.mask_for(len(self.slices))
        return y.addmm_(shrunk, self.b.t())  # y is the layer's fresh output
