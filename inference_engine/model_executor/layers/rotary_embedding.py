"""Rotary position embedding with the frequencies Hugging Face computes for the config
(default, linear, dynamic-NTK at init length, YaRN, Llama-3 scaling)."""
import torch
from torch import nn

from inference_engine import ops


def rope_parameters(config) -> tuple[str, dict]:
    """The config's rotary scaling type and its parameters (transformers 5's rope_parameters,
    or the older rope_scaling)."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return params.get("rope_type", params.get("type", "default")), params


def _inv_freq(config, head_size: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """Inverse frequencies and attention scaling from transformers' own rope initialisers, so
    that positions rotate exactly as in the reference implementation (on the same device, whose
    cos/sin the reference uses too)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    rope_type, params = rope_parameters(config)
    if rope_type == "default":
        base = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        exponents = torch.arange(0, head_size, 2, dtype=torch.int64, device=device).float()
        inv = 1.0 / (base ** (exponents / head_size))
        return inv, 1.0
    if rope_type not in ROPE_INIT_FUNCTIONS:
        raise ValueError(f"unsupported rope type {rope_type!r}")
    inv, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, device)
    return inv.float(), float(scaling)


class RotaryEmbedding(nn.Module):
    """Rotates query and key heads in place by their positions (NeoX half-split style)."""

    def __init__(self, config, head_size: int, max_position: int, is_neox_style: bool = True):
        super().__init__()
        self.head_size = head_size
        self.is_neox_style = is_neox_style
        device = torch.get_default_device()
        inv_freq, scaling = _inv_freq(config, head_size, device)
        t = torch.arange(max_position, dtype=torch.int64, device=device).float()
        freqs = t[:, None] * inv_freq[None, :]
        cache = torch.cat((freqs.cos() * scaling, freqs.sin() * scaling), dim=-1)
        self.register_buffer("cos_sin_cache", cache, persistent=False)

    def forward(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor):
        return ops.rotary_embedding(positions, query, key, self.head_size, self.cos_sin_cache,
                                    self.is_neox_style)

    def rotate_and_cache(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                         value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                         slot_mapping: torch.Tensor) -> torch.Tensor:
        """Rotates query and key, stores the rotated keys and the values in the paged cache at
        slot_mapping, and returns the rotated query (one kernel on the GPU)."""
        return ops.rotary_and_cache(positions, query, key, value, key_cache, value_cache,
                                    slot_mapping, self.head_size, self.cos_sin_cache,
                                    self.is_neox_style)

    def forward_native(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor):
        return ops.rotary_embedding_ref(positions, query, key, self.head_size, self.cos_sin_cache,
                                        self.is_neox_style)
