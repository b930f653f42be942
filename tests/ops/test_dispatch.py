"""The public ops: backend choice, its one-time log line, and tracing under torch.compile."""
import logging

import pytest
import torch

from inference_engine import ops
from inference_engine.ops import _compiled
from inference_engine.ops._dispatch import Op
from inference_engine.ops.layernorm import rms_norm_ref
from op_testing import DEVICES, require_compiled


def test_cpu_ops_use_the_extension():
    require_compiled("rms_norm", "cpu")
    for name in ops.__all__:
        # GPU-only ops: Triton's prefill attention, the tensor cores' few-row matmul
        expected = "torch" if name in ("prefill_attention", "skinny_matmul") else "compiled"
        assert getattr(ops, name).backend("cpu") == expected, name


def test_backend_is_logged_once(caplog):
    op = Op(rms_norm_ref, name="rms_norm_logged")  # no compiled or Triton variant: the reference
    x, w = torch.randn(2, 8), torch.ones(8)
    with caplog.at_level(logging.INFO, logger="inference_engine.ops._dispatch"):
        op(x, w, 1e-6)
        op(x, w, 1e-6)
    assert [r.getMessage() for r in caplog.records] == [
        "op rms_norm_logged on cpu uses the torch backend"]


def test_calls_the_compiled_kernel_has_no_instance_for_run_the_next_backend():
    require_compiled("silu_and_mul", "cpu")
    calls = []

    def compiled(x):
        calls.append(x.shape[-1])
        return _compiled.silu_and_mul(x)
    op = Op(ops.silu_and_mul_ref, compiled, "silu_and_mul", name="silu_and_mul_takes",
            compiled_takes=lambda x: x.shape[-1] % 16 == 0)
    for width in (32, 6):
        x = torch.randn(3, width)
        torch.testing.assert_close(op(x), ops.silu_and_mul_ref(x))
    assert calls == [32]  # width 6 ran on the reference (no Triton on CPU)
    assert op.backend("cpu") == "compiled"


def test_public_op_keeps_the_reference_signature():
    assert ops.rms_norm.__doc__ == rms_norm_ref.__doc__
    assert ops.rms_norm.__wrapped__ is rms_norm_ref


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("max_context", [256, 4096], ids=["v1", "v2"])
def test_paged_attention_choice_of_version(max_context, device):
    """ops.paged_attention picks v1 or v2 (here with 128-token partitions: few sequences) from
    the block table's width; both match the reference."""
    require_compiled("paged_attention_v2", device)
    block_size, num_seqs = 16, 2
    blocks = max_context // block_size
    key_cache = torch.randn(num_seqs * blocks, block_size, 2, 64, device=device)
    value_cache = torch.randn_like(key_cache)
    block_tables = torch.arange(num_seqs * blocks, dtype=torch.int32, device=device).view(num_seqs, blocks)
    seq_lens = torch.tensor([max_context, 37], dtype=torch.int32, device=device)
    query = torch.randn(num_seqs, 8, 64, device=device)
    out = ops.paged_attention(query, key_cache, value_cache, block_tables, seq_lens, 0.125)
    ref = ops.paged_attention_ref(query, key_cache, value_cache, block_tables, seq_lens, 0.125)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_first_call_may_be_compiled():
    """Choosing (and logging) the backend on the first call does not break a fullgraph trace."""
    require_compiled("silu_and_mul", "cpu")
    op = Op(ops.silu_and_mul_ref, _compiled.silu_and_mul, "silu_and_mul", name="silu_and_mul_first_call")
    x = torch.randn(3, 8)
    out = torch.compile(lambda t: op(t) * 2, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(out, ops.silu_and_mul_ref(x) * 2)


def test_ops_trace_under_torch_compile():
    """The compiled ops (out-variant schemas with mutation annotations) trace into one graph."""
    require_compiled("reshape_and_cache", "cpu")
    key_cache = torch.zeros(4, 16, 2, 64)
    value_cache = torch.zeros_like(key_cache)
    block_tables = torch.tensor([[2, 0]], dtype=torch.int32)
    weight = torch.randn(256)

    def layer(x, key, value, slots, seq_lens):
        h = ops.silu_and_mul(ops.rms_norm(x, weight, 1e-6))
        ops.reshape_and_cache(key, value, key_cache, value_cache, slots)
        query = h.view(1, 2, 64)
        return ops.paged_attention(query, key_cache, value_cache, block_tables, seq_lens, 0.125)

    args = (torch.randn(1, 256), torch.randn(1, 2, 64), torch.randn(1, 2, 64), torch.tensor([37]),
            torch.tensor([22], dtype=torch.int32))
    eager = layer(*args)
    key_cache.zero_()
    value_cache.zero_()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)(*args)
    torch.testing.assert_close(compiled, eager)
    assert key_cache.view(-1, 2, 64)[37].abs().sum() > 0, "the cache write must survive compilation"
