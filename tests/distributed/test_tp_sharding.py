"""Weight loaders of the parallel layers, one simulated rank at a time (no processes): each
rank's shard must be the right slice of the checkpoint tensor, and the shards must put the
whole layer back together (concatenated for column/vocab splits, summed for row splits)."""
import pytest
import torch
import torch.nn.functional as F

from inference_engine.model_executor.layers.linear import (ColumnParallelLinear,
                                                           MergedColumnParallelLinear,
                                                           QKVParallelLinear, RowParallelLinear)
from inference_engine.model_executor.layers.vocab_embedding import (ParallelLMHead,
                                                                    VocabParallelEmbedding)
from utils.tp_ranks import use_rank


@pytest.fixture
def as_rank(monkeypatch):
    """Builds layers as rank `rank` of `world` would (utils/tp_ranks.py)."""
    return lambda rank, world: use_rank(monkeypatch, rank, world)


@pytest.mark.parametrize("num_heads,num_kv_heads,world", [(4, 2, 2), (4, 1, 2), (8, 2, 4), (4, 4, 4)])
def test_qkv_shards_follow_their_query_group(as_rank, num_heads, num_kv_heads, world):
    hidden, head = 8, 3
    q = torch.randn(num_heads * head, hidden)
    k, v = torch.randn(2, num_kv_heads * head, hidden)
    bias = {s: torch.randn(n * head) for s, n in (("q", num_heads), ("k", num_kv_heads), ("v", num_kv_heads))}
    x = torch.randn(5, hidden)
    for rank in range(world):
        as_rank(rank, world)
        layer = QKVParallelLinear(hidden, head, num_heads, num_kv_heads, bias=True)
        for shard_id, w in (("q", q), ("k", k), ("v", v)):
            layer.weight.weight_loader(layer.weight, w, shard_id)
            layer.bias.weight_loader(layer.bias, bias[shard_id], shard_id)
        heads_here = num_heads // world
        q_heads = range(rank * heads_here, (rank + 1) * heads_here)
        # The KV head that this rank's query heads attend to, replicated when ranks > KV heads.
        kv_heads = sorted({h * num_kv_heads // num_heads for h in q_heads})
        rows = ([h * head + i for h in q_heads for i in range(head)],
                [h * head + i for h in kv_heads for i in range(head)])
        want = torch.cat([q[rows[0]], k[rows[1]], v[rows[1]]])
        want_bias = torch.cat([bias["q"][rows[0]], bias["k"][rows[1]], bias["v"][rows[1]]])
        assert torch.equal(layer.weight, want)
        assert torch.equal(layer(x), F.linear(x, want, want_bias))


def test_column_and_merged_shards_concatenate_to_the_full_layer(as_rank):
    gate, up = torch.randn(2, 12, 8)
    full = torch.randn(6, 8)
    x = torch.randn(3, 8)
    merged_out, column_out = [], []
    for rank in range(2):
        as_rank(rank, 2)
        merged = MergedColumnParallelLinear(8, [12, 12])
        merged.weight.weight_loader(merged.weight, gate, 0)
        merged.weight.weight_loader(merged.weight, up, 1)
        g, u = merged(x).chunk(2, dim=-1)  # the activation splits each rank's output in half
        merged_out.append((g, u))
        column = ColumnParallelLinear(8, 6)
        column.weight.weight_loader(column.weight, full)
        column_out.append(column(x))
    assert torch.allclose(torch.cat([g for g, _ in merged_out], -1), x @ gate.T)
    assert torch.allclose(torch.cat([u for _, u in merged_out], -1), x @ up.T)
    assert torch.allclose(torch.cat(column_out, -1), x @ full.T)


def test_row_shards_sum_to_the_full_layer_with_the_bias_once(as_rank):
    weight, bias, x = torch.randn(5, 8), torch.randn(5), torch.randn(3, 8)
    partial = []
    for rank in range(2):
        as_rank(rank, 2)
        layer = RowParallelLinear(8, 5, bias=True)
        layer.weight.weight_loader(layer.weight, weight)
        layer.bias.weight_loader(layer.bias, bias)
        partial.append(F.linear(x[:, rank * 4:(rank + 1) * 4], layer.weight))
        assert torch.equal(layer.bias, bias)
    assert torch.allclose(sum(partial) + bias, F.linear(x, weight, bias), atol=1e-6)


def test_vocab_split_with_padding_rebuilds_embeddings_and_logits(as_rank):
    vocab, dim, world = 10, 4, 4  # 10 rows in shards of 3: the last rank holds one and padding
    table = torch.randn(vocab, dim)
    ids = torch.tensor([0, 3, 5, 9, 2])
    hidden = torch.randn(2, dim)
    embedded, logits = 0, []
    for rank in range(world):
        as_rank(rank, world)
        embed = VocabParallelEmbedding(vocab, dim)
        embed.weight.weight_loader(embed.weight, table)
        embedded = embedded + embed(ids)
        head = ParallelLMHead(vocab, dim)
        head.weight.weight_loader(head.weight, table)
        logits.append(F.linear(hidden, head.weight))
    assert torch.equal(embedded, table[ids])
    assert torch.allclose(torch.cat(logits, -1)[:, :vocab], hidden @ table.T)


def test_uneven_splits_are_refused():
    from transformers import LlamaConfig

    from inference_engine.config import ModelConfig, ParallelConfig
    config = LlamaConfig(num_attention_heads=9, num_key_value_heads=3, hidden_size=576,
                         intermediate_size=1536, architectures=["LlamaForCausalLM"])
    model = ModelConfig(model="unused", hf_config=config, load_format="dummy", device="cpu")
    with pytest.raises(ValueError, match=r"tensor_parallel_size=2 .*9 query heads, 3 KV heads.*"
                                         r"Sizes that work: 1, 3$"):
        ParallelConfig(2).verify_with_model_config(model)
    ParallelConfig(3).verify_with_model_config(model)
    with pytest.raises(ValueError, match="distributed_executor_backend"):
        ParallelConfig(2, "threads")
