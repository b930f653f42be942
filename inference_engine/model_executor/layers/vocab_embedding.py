"""Token embedding and LM head, split over tensor-parallel ranks along the vocabulary."""
import torch
import torch.nn.functional as F
from torch import nn

from inference_engine.distributed.parallel_state import (all_reduce, gather_to_rank0,
                                                          get_tp_rank, get_tp_world_size)
from inference_engine.model_executor.layers.linear import linear


class VocabParallelEmbedding(nn.Module):
    """Each rank holds a contiguous slice of the vocabulary (padded to split evenly)."""

    def __init__(self, vocab_size: int, embedding_dim: int):
        super().__init__()
        self.tp_rank, self.tp_size = get_tp_rank(), get_tp_world_size()
        self.vocab_size = vocab_size
        self.shard_size = -(-vocab_size // self.tp_size)
        self.vocab_start = self.tp_rank * self.shard_size
        self.weight = nn.Parameter(torch.empty(self.shard_size, embedding_dim), requires_grad=False)
        self.weight.weight_loader = self.weight_loader

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor) -> None:
        shard = loaded[self.vocab_start:self.vocab_start + self.shard_size]
        param.data[:shard.shape[0]].copy_(shard)
        param.data[shard.shape[0]:].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.tp_size == 1:
            return F.embedding(input_ids, self.weight)
        local = input_ids - self.vocab_start
        mine = (local >= 0) & (local < self.shard_size)
        out = F.embedding(local.clamp(0, self.shard_size - 1), self.weight)
        return all_reduce(out * mine.unsqueeze(-1).to(out.dtype))


class ParallelLMHead(VocabParallelEmbedding):
    """Projects hidden states onto the vocabulary; the full logits exist on rank 0 only. Steps of
    a few rows take the few-row matmul, as the other linear layers do."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor | None:
        logits = gather_to_rank0(linear(hidden, self.weight), dim=-1)
        return logits[..., :self.vocab_size] if logits is not None else None
