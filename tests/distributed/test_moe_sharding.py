"""The mixture-of-experts layer: its two ways (each expert's rows through a grouped matmul, every
row through every expert) against a plain per-token loop, and its tensor-parallel shards, one
simulated rank at a time, summing to the whole layer."""
import pytest
import torch
import torch.nn.functional as F

from inference_engine.model_executor.layers import fused_moe
from inference_engine.model_executor.layers.fused_moe import FusedMoE, moe_dense, moe_grouped, route

E, K, H, I = 6, 2, 16, 24


def reference(x, gate, up, down, router_logits, renormalize):
    """Token by token: softmax, top-k, (renormalize), sum of the chosen experts' SwiGLU."""
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        probs = torch.softmax(router_logits[t].float(), -1)
        weights, experts = probs.topk(K)
        if renormalize:
            weights = weights / weights.sum()
        for w, e in zip(weights.to(x.dtype), experts.tolist()):
            out[t] += w * (F.silu(x[t] @ gate[e].T) * (x[t] @ up[e].T)) @ down[e].T
    return out


def checkpoint(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(E, I, H, generator=g) / 4, torch.randn(E, I, H, generator=g) / 4,
            torch.randn(E, H, I, generator=g) / 4]


def load(layer: FusedMoE, gate, up, down) -> None:
    for e in range(E):
        layer.w13.weight_loader(layer.w13, gate[e], e, "gate")
        layer.w13.weight_loader(layer.w13, up[e], e, "up")
        layer.w2.weight_loader(layer.w2, down[e], e, "down")


@pytest.mark.parametrize("renormalize", [True, False])
def test_routed_and_dense_match_a_plain_loop(renormalize):
    gate, up, down = checkpoint()
    x, logits = torch.randn(9, H), torch.randn(9, E)
    layer = FusedMoE(E, K, H, I, renormalize)
    load(layer, gate, up, down)
    expected = reference(x, gate, up, down, logits, renormalize)
    weights, experts = route(logits, K, renormalize, x.dtype)
    for run in (moe_grouped, moe_dense):
        torch.testing.assert_close(run(x, layer.w13, layer.w2, weights, experts), expected,
                                   rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(x, logits), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("world", [2, 3])
def test_shards_sum_to_the_whole_layer(monkeypatch, world):
    gate, up, down = checkpoint(1)
    x, logits = torch.randn(7, H), torch.randn(7, E)
    partial = []
    for rank in range(world):
        monkeypatch.setattr(fused_moe, "get_tp_world_size", lambda: world)
        monkeypatch.setattr(fused_moe, "get_tp_rank", lambda: rank)
        monkeypatch.setattr(fused_moe, "all_reduce", lambda y: y)
        layer = FusedMoE(E, K, H, I, True)
        load(layer, gate, up, down)
        assert layer.w13.shape == (E, 2 * I // world, H)
        partial.append(layer(x, logits))
    torch.testing.assert_close(sum(partial), reference(x, gate, up, down, logits, True),
                               rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(fused_moe, "get_tp_world_size", lambda: 5)
    with pytest.raises(ValueError, match="not divisible by the tensor-parallel size 5"):
        FusedMoE(E, K, H, I, True)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_experts_without_rows_and_16_bit_weights(dtype, device):
    gate, up, down = checkpoint(2)
    x = torch.randn(5, H)
    logits = torch.full((5, E), -10.0)
    logits[:, 1], logits[:, 4] = 3.0, 2.0  # experts 0, 2, 3 and 5 get no rows
    expected = reference(x, gate, up, down, logits, True)
    layer = FusedMoE(E, K, H, I, True)
    load(layer, gate, up, down)
    layer.to(device, dtype)
    weights, experts = route(logits.to(device), K, True, dtype)
    tolerance = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=1e-5, atol=1e-5)
    for run in (moe_grouped, moe_dense):
        got = run(x.to(device, dtype), layer.w13, layer.w2, weights, experts)
        torch.testing.assert_close(got.float().cpu(), expected, **tolerance)
