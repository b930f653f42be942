"""A mixture-of-experts MLP (Mixtral, Qwen3-MoE): a router picks each token's top-k experts, each
a SwiGLU MLP, and their outputs are summed with the router's weights.

The experts' weights sit stacked, `w13` [E, 2 * I, H] (gate and up) and `w2` [E, H, I], their
intermediate size split over tensor-parallel ranks (each rank's sums are all-reduced, as a
row-parallel layer's). The (token, expert) pairs are sorted by expert and each expert's rows go
through one grouped matmul (torch._grouped_mm), all on the device: no host read of which rows
went where, so CUDA graphs can capture it. Where torch has no grouped matmul for the dtype
(float32 on CUDA), every row goes through every expert with a zero weight where it was not
routed instead (E / k times the matmuls). Both add each token's experts in expert order, as
transformers does.
"""
import torch
import torch.nn.functional as F
from torch import nn

from inference_engine.distributed.parallel_state import all_reduce, get_tp_rank, get_tp_world_size


def route(router_logits: torch.Tensor, top_k: int, renormalize: bool,
          dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights [T, k] in `dtype`, experts [T, k]) as transformers computes them: softmax in
    float32, top-k, optionally renormalized over the k."""
    probs = torch.softmax(router_logits.float(), dim=-1)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.to(dtype), experts


def _expert(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    gate, up = F.linear(x, w13).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, w2)


def moe_grouped(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, weights: torch.Tensor,
                experts: torch.Tensor) -> torch.Tensor:
    """The routed rows, sorted by expert, through one grouped matmul per projection."""
    num_experts, top_k = w13.shape[0], experts.shape[1]
    flat = experts.flatten()
    order = flat.argsort(stable=True)  # a token's pairs stay in slot order within an expert
    rows = order // top_k
    # Rows per expert without bincount, which reads the largest id on the host.
    counts = torch.zeros(num_experts, dtype=torch.int32, device=x.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    offsets = counts.cumsum(0, dtype=torch.int32)
    gate, up = torch._grouped_mm(x[rows], w13.transpose(1, 2), offs=offsets).chunk(2, dim=-1)
    down = torch._grouped_mm(F.silu(gate) * up, w2.transpose(1, 2), offs=offsets)
    out = torch.zeros_like(x)
    return out.index_add_(0, rows, down * weights.flatten()[order, None])


def moe_dense(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, weights: torch.Tensor,
              experts: torch.Tensor) -> torch.Tensor:
    """Every expert over every row, weighted by zero where the row was not routed to it."""
    combine = torch.zeros(x.shape[0], w13.shape[0], dtype=weights.dtype, device=x.device)
    combine.scatter_(1, experts, weights)
    out = torch.zeros_like(x)
    for e in range(w13.shape[0]):
        out += _expert(x, w13[e], w2[e]) * combine[:, e, None]
    return out


class FusedMoE(nn.Module):
    def __init__(self, num_experts: int, top_k: int, hidden_size: int, intermediate_size: int,
                 renormalize: bool):
        super().__init__()
        self.tp_rank, tp_size = get_tp_rank(), get_tp_world_size()
        if intermediate_size % tp_size:
            raise ValueError(f"the experts' intermediate size {intermediate_size} is not "
                             f"divisible by the tensor-parallel size {tp_size}")
        self.shard = intermediate_size // tp_size
        self.top_k, self.renormalize = top_k, renormalize
        self.w13 = nn.Parameter(torch.empty(num_experts, 2 * self.shard, hidden_size),
                                requires_grad=False)
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden_size, self.shard),
                               requires_grad=False)
        self.w13.weight_loader = self.w2.weight_loader = self.weight_loader

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, expert: int,
                      part: str) -> None:
        """One expert's checkpoint matrix: `part` is gate, up or down."""
        start = self.tp_rank * self.shard
        if part == "down":
            param.data[expert].copy_(loaded.narrow(1, start, self.shard))
            return
        offset = 0 if part == "gate" else self.shard
        param.data[expert, offset:offset + self.shard].copy_(loaded.narrow(0, start, self.shard))

    def forward(self, x: torch.Tensor, router_logits: torch.Tensor) -> torch.Tensor:
        weights, experts = route(router_logits, self.top_k, self.renormalize, x.dtype)
        run = moe_dense if x.is_cuda and x.dtype == torch.float32 else moe_grouped
        return all_reduce(run(x, self.w13, self.w2, weights, experts))
