"""Allocates the paged KV cache and binds each attention layer to its slice.

A host cache is allocated untouched: its pages cost nothing until requests write them, and once
a burst is over (no block in use) they go back to the system (`madvise(MADV_DONTNEED)`: they
read as zeros when next written), so the process does not stay at its peak size."""
import ctypes
import ctypes.util
import mmap

import torch
from torch import nn

from inference_engine import ops
from inference_engine.model_executor.layers.attention import Attention
from inference_engine.sample.metadata import device_tensor


def attention_layers(model: nn.Module) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


def block_bytes(model: nn.Module, block_size: int, dtype: torch.dtype) -> int:
    """Bytes one block takes over all layers, keys and values."""
    layers = attention_layers(model)
    per_token = sum(2 * a.num_kv_heads * a.head_size for a in layers)
    return per_token * block_size * torch.finfo(dtype).bits // 8


class CacheEngine:
    """One [2, num_layers, num_blocks, block_size, num_kv_heads, head_size] tensor."""

    def __init__(self, model: nn.Module, num_blocks: int, block_size: int, dtype: torch.dtype,
                 device: torch.device):
        self.layers = attention_layers(model)
        first = self.layers[0]
        self.kv_cache = torch.empty(2, len(self.layers), num_blocks, block_size, first.num_kv_heads,
                                    first.head_size, dtype=dtype, device=device)
        for i, layer in enumerate(self.layers):
            layer.k_cache, layer.v_cache = self.kv_cache[0, i], self.kv_cache[1, i]

    def release_memory(self) -> None:
        """While no block holds anything: a host cache's written pages go back to the system;
        a device cache keeps its memory."""
        release_pages(self.kv_cache)

    def copy_blocks(self, blocks_to_copy: list[tuple[int, int]]) -> None:
        if not blocks_to_copy:
            return
        mapping = device_tensor(blocks_to_copy, torch.int64, self.kv_cache.device)
        ops.copy_blocks([l.k_cache for l in self.layers], [l.v_cache for l in self.layers], mapping)


_MADV_DONTNEED = 4


def _madvise():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").madvise
    except (OSError, AttributeError):
        return None


_MADVISE = _madvise()


def release_pages(tensor: torch.Tensor) -> None:
    """Gives the pages of a host tensor whose contents no longer matter back to the system; the
    tensor keeps its memory range, which reads as zeros until written again."""
    if _MADVISE is None or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return
    page = mmap.PAGESIZE
    start = -(-tensor.data_ptr() // page) * page  # whole pages inside the tensor only
    end = (tensor.data_ptr() + tensor.numel() * tensor.element_size()) // page * page
    if end > start:
        _MADVISE(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)
