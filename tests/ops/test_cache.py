"""reshape_and_cache, copy_blocks and swap_blocks kernels against their references."""
import pytest
import torch

from inference_engine.ops import _compiled
from inference_engine.ops.attention import copy_blocks_ref, reshape_and_cache_ref, swap_blocks_ref
from op_testing import DEVICES, DTYPES, require_compiled

HEAD_SIZES = [64, 80, 96, 112, 128, 256]


def _caches(num_blocks, block_size, num_kv_heads, head_size, dtype, device):
    shape = (num_blocks, block_size, num_kv_heads, head_size)
    return (torch.randn(shape, dtype=dtype, device=device),
            torch.randn(shape, dtype=dtype, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head_size", HEAD_SIZES)
@pytest.mark.parametrize("block_size", [16, 32])
def test_reshape_and_cache(device, dtype, head_size, block_size):
    require_compiled("reshape_and_cache", device)
    tokens, num_kv_heads, num_blocks = 42, 4, 8
    key_cache, value_cache = _caches(num_blocks, block_size, num_kv_heads, head_size, dtype, device)
    slots = torch.randperm(num_blocks * block_size, device=device)[:tokens]
    slots[::5] = -1  # padding tokens are not stored
    # key/value are slices of one fused kv projection: rows are strided, heads contiguous.
    kv = torch.randn(tokens, 2, num_kv_heads, head_size, dtype=dtype, device=device)
    key, value = kv[:, 0], kv[:, 1]
    ref_key_cache, ref_value_cache = key_cache.clone(), value_cache.clone()
    _compiled.reshape_and_cache(key, value, key_cache, value_cache, slots)
    reshape_and_cache_ref(key, value, ref_key_cache, ref_value_cache, slots)
    assert torch.equal(key_cache, ref_key_cache) and torch.equal(value_cache, ref_value_cache)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [16, 32])
def test_copy_blocks(device, dtype, block_size):
    require_compiled("copy_blocks", device)
    num_layers, num_blocks = 3, 16
    layers = [_caches(num_blocks, block_size, 2, 128, dtype, device) for _ in range(num_layers)]
    key_caches, value_caches = [k for k, _ in layers], [v for _, v in layers]
    blocks = torch.randperm(num_blocks)
    mapping = torch.stack((blocks[:5], blocks[5:10]), dim=1)  # sources and destinations disjoint
    ref_keys = [k.clone() for k in key_caches]
    ref_values = [v.clone() for v in value_caches]
    _compiled.copy_blocks(key_caches, value_caches, mapping)
    copy_blocks_ref(ref_keys, ref_values, mapping)
    for got, want in zip(key_caches + value_caches, ref_keys + ref_values):
        assert torch.equal(got, want)


@pytest.mark.parametrize("src_device, dst_device",
                         [("cpu", "cpu"),
                          pytest.param("cuda", "cpu", marks=pytest.mark.gpu),
                          pytest.param("cpu", "cuda", marks=pytest.mark.gpu),
                          pytest.param("cuda", "cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_swap_blocks(src_device, dst_device, dtype):
    require_compiled("swap_blocks", "cuda" if "cuda" in (src_device, dst_device) else "cpu")
    src, _ = _caches(12, 16, 2, 64, dtype, src_device)
    dst, _ = _caches(10, 16, 2, 64, dtype, dst_device)
    mapping = torch.tensor([[0, 9], [3, 0], [11, 4]])
    ref_dst = dst.clone()
    _compiled.swap_blocks(src, dst, mapping)
    swap_blocks_ref(src, ref_dst, mapping)
    assert torch.equal(dst, ref_dst)
