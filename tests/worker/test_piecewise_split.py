"""The attention layer's two hooks for piecewise CUDA graphs, on the CPU: the graph split that
replaces attention while the pieces are captured, and the `out` buffer that the eager attention
writes at replay. (The capture and replay themselves need a GPU: tests/gpu.)"""
import pytest
import torch

from inference_engine.model_executor.forward_context import (AttentionMetadata,
                                                             set_attention_metadata,
                                                             set_graph_split)
from inference_engine.model_executor.layers.attention import Attention

HEADS, KV_HEADS, HEAD, BLOCK = 4, 2, 16, 4


def attention_layer() -> Attention:
    layer = Attention(HEADS, HEAD, HEAD ** -0.5, KV_HEADS)
    layer.k_cache = torch.randn(8, BLOCK, KV_HEADS, HEAD)
    layer.v_cache = torch.randn(8, BLOCK, KV_HEADS, HEAD)
    return layer


def metadata(kind: str) -> AttentionMetadata:
    """A prefill of 5 tokens (blocks 0-1), decodes at lengths 3 (block 2) and 7 (blocks 3-4)."""
    prefill = dict(slots=list(range(5)), tables=[[0, 1]], lens=[5])
    decodes = dict(slots=[2 * BLOCK + 2, 4 * BLOCK + 2], tables=[[2, 0], [3, 4]], lens=[3, 7])
    parts = {"prefill": [prefill], "decode": [decodes], "mixed": [prefill, decodes]}[kind]
    slots = [s for p in parts for s in p["slots"]]
    tables = [t for p in parts for t in p["tables"]]
    lens = [n for p in parts for n in p["lens"]]
    n = 1 if kind != "decode" else 0
    return AttentionMetadata(
        torch.tensor(slots), torch.tensor(tables, dtype=torch.int32),
        torch.tensor(lens, dtype=torch.int32), num_prefills=n, num_prefill_tokens=5 * n,
        query_start_loc=torch.tensor([0, 5], dtype=torch.int32) if n else None,
        max_seq_len=max(lens), max_query_len=5 if n else 1)


@pytest.mark.parametrize("kind", ["prefill", "decode", "mixed"])
def test_out_buffer_receives_what_attention_returns(kind):
    torch.manual_seed(0)
    layer, meta = attention_layer(), metadata(kind)
    t = meta.slot_mapping.shape[0]
    qkv = torch.randn(t, (HEADS + 2 * KV_HEADS) * HEAD)
    q, k, v = qkv.split([HEADS * HEAD, KV_HEADS * HEAD, KV_HEADS * HEAD], dim=-1)
    with set_attention_metadata(meta):
        expected = layer(q, k, v)
        out = torch.full((t + 3, HEADS * HEAD), float("nan"))  # a graph's buffer, padded rows
        returned = layer(q, k, v, out=out[:t])
    torch.testing.assert_close(out[:t], expected)
    assert returned.data_ptr() == out.data_ptr()
    assert out[t:].isnan().all()  # rows past the step's tokens are left alone


def test_graph_split_replaces_attention_and_leaves_the_cache_alone():
    layer = attention_layer()
    cache_before = layer.k_cache.clone()
    seen = []

    def split(attention, q, k, v, positions):
        seen.append((attention, q.shape, k.shape, v.shape, positions))
        return torch.zeros(q.shape[0], HEADS * HEAD)

    q = torch.randn(6, HEADS * HEAD)
    k, v = torch.randn(6, KV_HEADS * HEAD), torch.randn(6, KV_HEADS * HEAD)
    with set_graph_split(split):  # no attention metadata is needed while capturing
        result = layer(q, k, v)
    assert seen == [(layer, q.shape, k.shape, v.shape, None)]
    assert torch.equal(result, torch.zeros(6, HEADS * HEAD))
    assert torch.equal(layer.k_cache, cache_before)
    with pytest.raises(RuntimeError, match="attention metadata"):
        layer(q, k, v)  # the split is gone once its context ends


def test_piecewise_graphs_default_off_on_cpu_and_with_tensor_parallelism():
    from inference_engine.config import (CacheConfig, EngineConfig, ModelConfig, ParallelConfig,
                                         SchedulerConfig)
    from inference_engine.transformers_utils.embedded import embedded_model_path
    model = ModelConfig(model=embedded_model_path(), device="cpu")

    def config(**kwargs):
        return EngineConfig(model, CacheConfig(), SchedulerConfig(),
                            ParallelConfig(kwargs.pop("tp", 1)), **kwargs)

    assert config().piecewise_graph_max_tokens == 0
    assert config(tp=2).piecewise_graph_max_tokens == 0
    assert config(piecewise_graph_max_tokens=512).piecewise_graph_max_tokens == 512
    with pytest.raises(ValueError, match="piecewise_graph_max_tokens"):
        config(piecewise_graph_max_tokens=-1)


def test_no_borrowing_where_the_build_cannot_wrap_device_memory():
    from inference_engine.worker.piecewise_cuda_graph import can_borrow
    assert can_borrow(torch.device("cpu")) is False  # the CUDA array interface is for devices


@pytest.mark.parametrize("kind", ["prefill", "decode", "mixed"])
def test_rotary_in_the_attention_call_equals_rotary_before_it(kind):
    """Attention given the rotary embedding and the positions (one kernel rotates and stores the
    keys) attends exactly as rotating first and passing the rotated q and k; the split hands the
    positions on to the eager attention call of a piecewise graph."""
    from types import SimpleNamespace

    from inference_engine.model_executor.layers.rotary_embedding import RotaryEmbedding
    torch.manual_seed(0)
    rotary = RotaryEmbedding(SimpleNamespace(rope_theta=10000.0), HEAD, 64)
    fused, plain = attention_layer(), attention_layer()
    fused.rotary_emb = rotary
    plain.k_cache, plain.v_cache = fused.k_cache.clone(), fused.v_cache.clone()
    meta = metadata(kind)
    t = meta.slot_mapping.shape[0]
    positions = torch.randint(0, 64, (t,))
    qkv = torch.randn(t, (HEADS + 2 * KV_HEADS) * HEAD)
    q, k, v = qkv.split([HEADS * HEAD, KV_HEADS * HEAD, KV_HEADS * HEAD], dim=-1)
    with set_attention_metadata(meta):
        got = fused(q, k, v, positions)
        q_rot, k_rot = rotary(positions, q, k)
        expected = plain(q_rot, k_rot, v)
        with pytest.raises(ValueError, match="positions"):
            fused(q, k, v)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(fused.k_cache, plain.k_cache)
    assert torch.equal(fused.v_cache, plain.v_cache)
    seen = []
    with set_graph_split(lambda *args: seen.append(args[-1]) or torch.zeros(t, HEADS * HEAD)):
        fused(q, k, v, positions)
    assert seen[0] is positions
