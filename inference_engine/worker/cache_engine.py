"""Allocates the paged KV cache and binds each attention layer to its slice."""
import torch
from torch import nn

from inference_engine import ops
from inference_engine.engine.idle_memory import release_pages
from inference_engine.model_executor.layers.attention import Attention
from inference_engine.model_executor.sampling_metadata import device_tensor


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
        """While no block holds anything: a host cache's written pages go back to the system
        (see engine/idle_memory.py); a device cache keeps its memory."""
        release_pages(self.kv_cache)

    def copy_blocks(self, blocks_to_copy: list[tuple[int, int]]) -> None:
        if not blocks_to_copy:
            return
        mapping = device_tensor(blocks_to_copy, torch.int64, self.kv_cache.device)
        ops.copy_blocks([l.k_cache for l in self.layers], [l.v_cache for l in self.layers], mapping)
