"""Finds a transformers model's attention calls, and what each needs, by running it once.

Attention modules differ in what they call their sizes (`head_dim`, `head_size`, `num_heads`,
none at all), and only the call itself shows the scale (Granite's is its own), a sliding
window, soft-capping or sinks. So the model runs two tokens with a recording attention
function; what it records sizes the paged `Attention` layers, and what the paged kernels cannot
do (soft-capped scores, sinks, a window shorter than the context) is refused here, at start,
rather than computed wrongly.
"""
from dataclasses import dataclass

import torch
from torch import nn

PROBE_NAME = "inference_engine_probe"


@dataclass(frozen=True)
class AttentionShape:
    num_heads: int
    num_kv_heads: int
    head_size: int
    scale: float


def _recording_forward(calls: dict):
    def forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        if module in calls:
            raise ValueError(f"{type(module).__name__} runs more than once per forward pass "
                             "(shared across layers): its layers would share one cache")
        calls[module] = (query.shape, key.shape, scaling, kwargs)
        out = torch.zeros(query.shape[0], query.shape[2], query.shape[1], query.shape[3],
                          dtype=query.dtype, device=query.device)
        return out, None
    return forward


def _check(module: nn.Module, kwargs: dict, hf_config) -> None:
    name = type(module).__name__
    if getattr(module, "is_causal", True) is False:
        raise ValueError(f"{name} is not causal: only decoder-only models can be served")
    if kwargs.get("softcap") is not None:
        raise ValueError(f"{name} soft-caps its attention scores, which the paged attention "
                         "kernels do not do yet")
    if kwargs.get("s_aux") is not None:
        raise ValueError(f"{name} has attention sinks, which the paged attention kernels do "
                         "not have yet")
    window = kwargs.get("sliding_window")
    # The context is capped at the config's sliding_window (ModelConfig), which full attention
    # then computes exactly; a layer with a shorter window would attend too far.
    if window is not None and window < (getattr(hf_config, "sliding_window", None) or 0):
        raise ValueError(f"{name} attends within a sliding window of {window} tokens, shorter "
                         "than the context; sliding windows are not implemented yet")
    if window is not None and not getattr(hf_config, "sliding_window", None):
        raise ValueError(f"{name} attends within a sliding window of {window} tokens; sliding "
                         "windows are not implemented yet")


@torch.inference_mode()
def probe_attention(decoder: nn.Module, hf_config) -> dict[nn.Module, AttentionShape]:
    """Runs `decoder` (a transformers base model, on its device) on two tokens; returns each
    attention module it calls, in call order, with the sizes and scale of its call."""
    from transformers import AttentionInterface
    calls: dict = {}
    AttentionInterface.register(PROBE_NAME, _recording_forward(calls))
    config = decoder.config
    chosen = config._attn_implementation
    config._attn_implementation = PROBE_NAME
    device = next(decoder.parameters()).device
    try:
        decoder(input_ids=torch.zeros(1, 2, dtype=torch.int64, device=device),
                position_ids=torch.arange(2, device=device)[None], use_cache=False)
    finally:
        config._attn_implementation = chosen
    if not calls:
        raise ValueError(f"{type(decoder).__name__} made no call to the attention interface; "
                         "it cannot run on the paged KV cache")
    shapes = {}
    for module, (q_shape, k_shape, scaling, kwargs) in calls.items():
        _check(module, kwargs, hf_config)
        heads, kv_heads, head_size = q_shape[1], k_shape[1], q_shape[3]
        if heads % kv_heads:
            raise ValueError(f"{heads} query heads do not share {kv_heads} KV heads evenly")
        shapes[module] = AttentionShape(heads, kv_heads, head_size,
                                        head_size ** -0.5 if scaling is None else float(scaling))
    first = next(iter(shapes.values()))
    if any((s.num_kv_heads, s.head_size) != (first.num_kv_heads, first.head_size)
           for s in shapes.values()):
        raise ValueError("layers with different KV head counts or sizes are not supported "
                         "(the paged cache holds one shape)")
    return shapes
