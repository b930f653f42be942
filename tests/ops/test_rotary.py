"""rotary_embedding kernel (NeoX and GPT-J styles) against the reference."""
import pytest
import torch

from inference_engine.ops import _compiled
from inference_engine.ops.rotary import rotary_embedding_ref
from op_testing import DEVICES, DTYPES, TOLERANCES, require_compiled


def _cos_sin_cache(max_position: int, rot_dim: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    inv_freq = 1.0 / 10000 ** (torch.arange(0, rot_dim, 2, dtype=torch.float32) / rot_dim)
    freqs = torch.outer(torch.arange(max_position, dtype=torch.float32), inv_freq)
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1).to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head_size", [64, 80, 128, 256])
@pytest.mark.parametrize("partial", [False, True], ids=["full", "partial"])
@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("float_cache", [True, False], ids=["f32cache", "samecache"])
def test_rotary_embedding(device, dtype, head_size, partial, is_neox, float_cache):
    require_compiled("rotary_embedding", device)
    tokens, q_heads, kv_heads = 37, 8, 2
    rot_dim = head_size // 2 if partial else head_size
    cache = _cos_sin_cache(4096, rot_dim, torch.float32 if float_cache else dtype, device)
    positions = torch.randint(0, 4096, (tokens,), device=device)
    # query and key are column slices of one fused qkv output, as the attention layer makes them.
    qkv = torch.randn(tokens, (q_heads + 2 * kv_heads) * head_size, dtype=dtype, device=device)
    query, key, _ = qkv.split([q_heads * head_size, kv_heads * head_size, kv_heads * head_size], dim=-1)
    q_out, k_out = _compiled.rotary_embedding(positions, query, key, head_size, cache, is_neox)
    q_ref, k_ref = rotary_embedding_ref(positions, query, key, head_size, cache, is_neox)
    torch.testing.assert_close(q_out, q_ref, **TOLERANCES[dtype])
    torch.testing.assert_close(k_out, k_ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tokens, q_heads, kv_heads", [(1, 6, 2), (3, 5, 1), (2, 32, 8), (4, 1, 1)])
def test_rotary_embedding_head_counts(device, tokens, q_heads, kv_heads):
    """The GPU kernel gives each thread block a few of a token's heads, some blocks both query and
    key heads (6 + 2, 5 + 1); decode batches have a few tokens."""
    require_compiled("rotary_embedding", device)
    head_size = 128
    cache = _cos_sin_cache(4096, head_size, torch.float32, device)
    positions = torch.randint(0, 4096, (tokens,), device=device)
    query = torch.randn(tokens, q_heads * head_size, dtype=torch.bfloat16, device=device)
    key = torch.randn(tokens, kv_heads * head_size, dtype=torch.bfloat16, device=device)
    q_out, k_out = _compiled.rotary_embedding(positions, query, key, head_size, cache, True)
    q_ref, k_ref = rotary_embedding_ref(positions, query, key, head_size, cache, True)
    torch.testing.assert_close(q_out, q_ref, **TOLERANCES[torch.bfloat16])
    torch.testing.assert_close(k_out, k_ref, **TOLERANCES[torch.bfloat16])
