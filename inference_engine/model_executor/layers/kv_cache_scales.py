"""The KV-cache scales some FP8 checkpoints carry: one float per attention layer for its keys and
one for its values, by which the layer divides what it stores in an FP8 cache (so that the values
fit e4m3's range) and multiplies what it reads. Their names, as the tools write them:

    <attention>.k_scale, <attention>.v_scale                  (compressed-tensors, vLLM's FP8)
    <attention>.k_proj.output_scale, <attention>.v_proj.output_scale   (older AutoFP8)

`take_kv_cache_scales` pulls them out of a checkpoint's tensors before the model's own loader
sees them; `apply_kv_cache_scales` hands them to the model's Attention layers. A cache in the
model's dtype ignores them (as vLLM's does).
"""
from collections.abc import Iterable, Iterator

import torch
from torch import nn

_SUFFIXES = {".k_scale": "k", ".v_scale": "v", ".k_proj.output_scale": "k",
             ".v_proj.output_scale": "v"}


def take_kv_cache_scales(weights: Iterable[tuple[str, torch.Tensor]],
                         found: dict[tuple[str, str], float]) -> Iterator[tuple[str, torch.Tensor]]:
    """The checkpoint's tensors less its KV-cache scales, which go into `found` as
    {(attention module's name, "k" or "v"): scale}."""
    for name, tensor in weights:
        for suffix, which in _SUFFIXES.items():
            if name.endswith(suffix):
                if tensor.numel() != 1:
                    raise ValueError(f"{name}: KV-cache scales per head or channel are not "
                                     "supported (one per layer is)")
                scale = float(tensor.float())
                if not scale > 0:
                    raise ValueError(f"{name}: a KV-cache scale must be positive, got {scale}")
                found[(name.removesuffix(suffix), which)] = scale
                break
        else:
            yield name, tensor


def apply_kv_cache_scales(model: nn.Module, found: dict[tuple[str, str], float]) -> None:
    """Sets each scale on the Attention layer inside the module it was stored under."""
    from inference_engine.model_executor.layers.attention import Attention
    layers = {name: m for name, m in model.named_modules() if isinstance(m, Attention)}
    for (owner, which), scale in found.items():
        owners = (owner, "model." + owner)  # (a bare transformer's names lack "model.")
        inside = [m for name, m in layers.items()
                  if any(name == o or name.startswith(o + ".") for o in owners)]
        if len(inside) != 1:
            raise ValueError(f"the checkpoint's KV-cache scale {owner}.{which}_scale belongs to "
                             f"no single attention layer of {type(model).__name__}")
        setattr(inside[0], f"{which}_scale", scale)
