"""LoRA slots on the parallel linear layers, one simulated rank at a time: each token gets its
own adapter's delta, scaling (x A^T) B^T on the right output slice, whatever the other tokens'
adapters; tokens of the base model get the layer's output exactly; the ranks' shares put the
whole layer's result back together (concatenated, or summed for row-parallel layers)."""
import pytest
import torch

from inference_engine.lora.context import LoRAContext, set_lora_context
from inference_engine.lora.layers import LoRASlots
from inference_engine.model_executor.layers.linear import (MergedColumnParallelLinear,
                                                           QKVParallelLinear, RowParallelLinear)
from utils.tp_ranks import use_rank

MAX_LORAS, MAX_RANK = 3, 4


def context(slots: list[int]) -> LoRAContext:
    """The mask of tokens in `slots` (-1: the base model)."""
    mask = torch.zeros(len(slots), MAX_LORAS * MAX_RANK)
    for t, slot in enumerate(slots):
        if slot >= 0:
            mask[t, slot * MAX_RANK:(slot + 1) * MAX_RANK] = 1
    return LoRAContext(mask)


def adapter(rank: int, sizes: dict, in_size: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {shard: (torch.randn(rank, in_size, generator=g), torch.randn(out, rank, generator=g))
            for shard, out in sizes.items()}


def reference(x, weight_parts: dict, adapters: list, token_slots: list[int]) -> torch.Tensor:
    """Each slice's x W^T plus, per token, its adapter's (x A^T) B^T: the full layer."""
    outputs = []
    for shard, w in weight_parts.items():
        y = x @ w.T
        for t, slot in enumerate(token_slots):
            if slot >= 0 and shard in adapters[slot]:
                a, b = adapters[slot][shard]
                y[t] += (x[t] @ a.T) @ b.T
        outputs.append(y)
    return outputs


@pytest.mark.parametrize("world", [1, 2])
def test_qkv_tokens_of_mixed_adapters(monkeypatch, world):
    hidden, head, heads, kv_heads = 8, 2, 4, 2
    parts = {"q": torch.randn(heads * head, hidden), "k": torch.randn(kv_heads * head, hidden),
             "v": torch.randn(kv_heads * head, hidden)}
    adapters = [adapter(4, {"q": heads * head, "v": kv_heads * head}, hidden, 1),
                adapter(2, {"q": heads * head, "k": kv_heads * head, "v": kv_heads * head},
                        hidden, 2)]
    token_slots = [0, -1, 1, 1, -1, 0]
    x = torch.randn(len(token_slots), hidden)
    want_q, want_k, want_v = reference(x, parts, adapters, token_slots)
    for rank in range(world):
        use_rank(monkeypatch, rank, world)
        layer = QKVParallelLinear(hidden, head, heads, kv_heads)
        for shard, w in parts.items():
            layer.weight.weight_loader(layer.weight, w, shard)
        plain = layer(x)
        layer.lora = LoRASlots(layer, MAX_LORAS, MAX_RANK)
        for slot, pieces in enumerate(adapters):
            layer.lora.set_slot(slot, pieces)
        with set_lora_context(context(token_slots)):
            q, k, v = layer(x).split([heads * head // world, kv_heads * head // world,
                                      kv_heads * head // world], dim=-1)
        rows_q = slice(rank * heads * head // world, (rank + 1) * heads * head // world)
        rows_kv = slice(rank * kv_heads * head // world, (rank + 1) * kv_heads * head // world)
        torch.testing.assert_close(q, want_q[:, rows_q])
        torch.testing.assert_close(k, want_k[:, rows_kv])
        torch.testing.assert_close(v, want_v[:, rows_kv])
        with set_lora_context(context(token_slots)):
            again = layer(x)
        base_rows = [t for t, s in enumerate(token_slots) if s < 0]
        assert torch.equal(again[base_rows], plain[base_rows])  # exactly the layer's own
        assert torch.equal(layer(x), plain)  # no context: no adapter


def test_merged_and_row_parallel_shares_combine(monkeypatch):
    hidden, inter = 6, 8
    gate, up = torch.randn(inter, hidden), torch.randn(inter, hidden)
    down = torch.randn(hidden, inter)
    gate_up_adapter = adapter(3, {1: inter}, hidden, 3)  # only the up projection
    down_adapter = adapter(4, {None: hidden}, inter, 4)
    token_slots = [2, -1, 2]
    x, h = torch.randn(3, hidden), torch.randn(3, inter)
    _, want_up = reference(x, {0: gate, 1: up}, [None, None, gate_up_adapter], token_slots)
    (want_down,) = reference(h, {None: down}, [None, None, down_adapter], token_slots)
    ups, downs = [], torch.zeros(3, hidden)
    for rank in range(2):
        use_rank(monkeypatch, rank, 2)
        merged = MergedColumnParallelLinear(hidden, [inter, inter])
        row = RowParallelLinear(inter, hidden)
        merged.weight.weight_loader(merged.weight, gate, 0)
        merged.weight.weight_loader(merged.weight, up, 1)
        row.weight.weight_loader(row.weight, down)
        merged.lora = LoRASlots(merged, MAX_LORAS, MAX_RANK)
        row.lora = LoRASlots(row, MAX_LORAS, MAX_RANK)
        merged.lora.set_slot(2, gate_up_adapter)
        row.lora.set_slot(2, down_adapter)
        with set_lora_context(context(token_slots)):
            ups.append(merged(x).chunk(2, dim=-1)[1])
            downs += row(h[:, rank * inter // 2:(rank + 1) * inter // 2])
    torch.testing.assert_close(torch.cat(ups, -1), want_up)
    torch.testing.assert_close(downs, want_down)


def test_a_slot_set_again_forgets_its_last_adapter():
    layer = RowParallelLinear(4, 4)
    layer.weight.data.normal_()
    layer.lora = LoRASlots(layer, MAX_LORAS, MAX_RANK)
    layer.lora.set_slot(0, adapter(4, {None: 4}, 4, 5))
    layer.lora.set_slot(0, None)
    x = torch.randn(2, 4)
    with set_lora_context(context([0, 0])):
        assert torch.equal(layer(x), x @ layer.weight.T)


@pytest.mark.parametrize("world", [1, 2])
def test_an_adapter_of_the_fused_checkpoint_layer_splits_like_its_weight(monkeypatch, world):
    """Phi-3 saves q, k and v as one qkv_proj: its adapter has one A and one B of all rows."""
    hidden, head, heads, kv_heads = 8, 2, 4, 2
    sizes = {"q": heads * head, "k": kv_heads * head, "v": kv_heads * head}
    split = adapter(4, sizes, hidden, 6)
    a = torch.randn(4, hidden)
    split = {shard: (a, b) for shard, (_, b) in split.items()}
    fused = {None: (a, torch.cat([split[s][1] for s in ("q", "k", "v")]))}
    x = torch.randn(3, hidden)
    for rank in range(world):
        use_rank(monkeypatch, rank, world)
        outputs = []
        for pieces in (split, fused):
            layer = QKVParallelLinear(hidden, head, heads, kv_heads)
            layer.weight.data.zero_()
            layer.lora = LoRASlots(layer, MAX_LORAS, MAX_RANK)
            layer.lora.set_slot(1, pieces)
            with set_lora_context(context([1, 1, -1])):
                outputs.append(layer(x))
        assert outputs[0].abs().sum() > 0 and torch.equal(outputs[0], outputs[1])
