"""rotary_embedding kernel (NeoX and GPT-J styles) and rotary_and_cache (rotary with the paged
cache write fused in) against the references."""
import pytest
import torch

from inference_engine.ops import _compiled
from inference_engine.ops.rotary import rotary_and_cache_ref, rotary_embedding_ref
from op_testing import DEVICES, DTYPES, TOLERANCES, require_compiled


def _cos_sin_cache(max_position: int, rot_dim: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    inv_freq = 1.0 / 10000 ** (torch.arange(0, rot_dim, 2, dtype=torch.float32) / rot_dim)
    freqs = torch.outer(torch.arange(max_position, dtype=torch.float32), inv_freq)
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1).to(dtype=dtype, device=device)


def rotary_and_cache_inputs(tokens: int, q_heads: int, kv_heads: int, head_size: int,
                            rot_dim: int, num_slots: int, dtype: torch.dtype, device: str):
    """A step's (positions, cos_sin_cache, query, key, value, slots) for rotary_and_cache: q, k
    and v as slices of one fused projection (strided rows), tokens 3 and 7 padding (slot -1)."""
    cos_sin = _cos_sin_cache(4096, rot_dim, torch.float32, device)
    positions = torch.randint(0, 4096, (tokens,), device=device)
    qkv = torch.randn(tokens, (q_heads + 2 * kv_heads) * head_size, dtype=dtype, device=device)
    query, key, value = qkv.split([q_heads * head_size, kv_heads * head_size,
                                   kv_heads * head_size], dim=-1)
    slots = torch.randperm(num_slots, device=device)[:tokens]
    slots[[3, 7]] = -1
    return positions, cos_sin, query, key, value, slots


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
@pytest.mark.parametrize("tokens, q_heads, kv_heads", [(1, 6, 2), (3, 5, 1), (2, 32, 8), (4, 1, 1), (2, 40, 8)])
def test_rotary_embedding_head_counts(device, tokens, q_heads, kv_heads):
    """The GPU kernel gives each thread block some of a token's heads (4 with one pair a thread,
    32 with 16-byte vectors), some blocks both query and key heads (6 + 2, 5 + 1, 40 + 8's second
    block); decode batches have a few tokens."""
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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shift", [0, 1, 4], ids=["aligned", "odd", "half-vector"])
def test_rotary_embedding_misaligned_rows(device, shift):
    """Rows that do not start on a 16-byte boundary (a view one or four elements into a wider
    buffer) take the one-pair-a-thread path on the GPU and give the same result."""
    require_compiled("rotary_embedding", device)
    tokens, q_heads, kv_heads, head_size = 5, 4, 2, 128
    cache = _cos_sin_cache(4096, head_size, torch.float32, device)
    positions = torch.randint(0, 4096, (tokens,), device=device)
    width = (q_heads + kv_heads) * head_size
    buf = torch.randn(tokens, width + shift + 3, dtype=torch.bfloat16, device=device)
    qk = buf[:, shift:shift + width]
    query, key = qk.split([q_heads * head_size, kv_heads * head_size], dim=-1)
    q_out, k_out = _compiled.rotary_embedding(positions, query, key, head_size, cache, True)
    q_ref, k_ref = rotary_embedding_ref(positions, query, key, head_size, cache, True)
    torch.testing.assert_close(q_out, q_ref, **TOLERANCES[torch.bfloat16])
    torch.testing.assert_close(k_out, k_ref, **TOLERANCES[torch.bfloat16])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head_size, partial, is_neox", [(128, False, True), (64, True, True),
                                                          (80, False, True), (128, False, False)])
@pytest.mark.parametrize("q_heads, kv_heads", [(8, 2), (40, 8)])
def test_rotary_and_cache(device, dtype, head_size, partial, is_neox, q_heads, kv_heads):
    """The fused op rotates the query as rotary_embedding does and stores the rotated keys and the
    values where reshape_and_cache would; padding tokens (slot -1) store nothing, and every other
    cache row is left alone."""
    require_compiled("rotary_and_cache", device)
    tokens, blocks, block_size = 11, 6, 4
    rot_dim = head_size // 2 if partial else head_size
    positions, cache, query, key, value, slots = rotary_and_cache_inputs(
        tokens, q_heads, kv_heads, head_size, rot_dim, blocks * block_size, dtype, device)
    k_cache = torch.randn(blocks, block_size, kv_heads, head_size, dtype=dtype, device=device)
    v_cache = torch.randn_like(k_cache)
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    q_out = _compiled.rotary_and_cache(positions, query, key, value, k_cache, v_cache, slots,
                                       head_size, cache, is_neox)
    q_ref = rotary_and_cache_ref(positions, query, key, value, k_ref, v_ref, slots, head_size,
                                 cache, is_neox)
    torch.testing.assert_close(q_out, q_ref, **TOLERANCES[dtype])
    torch.testing.assert_close(k_cache, k_ref, **TOLERANCES[dtype])
    assert torch.equal(v_cache, v_ref)  # values are copied, not computed


@pytest.mark.parametrize("device", DEVICES)
def test_rotary_and_cache_into_a_cache_of_another_dtype(device):
    """A float32 step into a bfloat16 cache: the keys are rotated in float32, then cast as they
    are stored (the fused kernel stores what it rotates, so this takes the two-kernel path)."""
    require_compiled("rotary_and_cache", device)
    tokens, kv_heads, head_size = 5, 2, 64
    cache = _cos_sin_cache(4096, head_size, torch.float32, device)
    positions = torch.randint(0, 4096, (tokens,), device=device)
    query = torch.randn(tokens, 4 * head_size, device=device)
    key, value = torch.randn(2, tokens, kv_heads * head_size, device=device)
    slots = torch.tensor([0, 5, -1, 9, 2], device=device)
    k_cache = torch.zeros(4, 4, kv_heads, head_size, dtype=torch.bfloat16, device=device)
    v_cache, k_ref, v_ref = torch.zeros_like(k_cache), k_cache.clone(), k_cache.clone()
    q_out = _compiled.rotary_and_cache(positions, query, key, value, k_cache, v_cache, slots,
                                       head_size, cache, True)
    q_ref = rotary_and_cache_ref(positions, query, key, value, k_ref, v_ref, slots, head_size,
                                 cache, True)
    torch.testing.assert_close(q_out, q_ref, **TOLERANCES[torch.float32])
    torch.testing.assert_close(k_cache, k_ref, **TOLERANCES[torch.bfloat16])
    assert torch.equal(v_cache, v_ref)
