"""Where a model's weights come from: safetensors folder, PyTorch pickles, GGUF file, or random
(dummy).

Every source yields Hugging Face parameter names (`model.layers.0.self_attn.q_proj.weight`, ...)
with tensors in Hugging Face layout; the model's `load_weights` maps them onto its own
(possibly fused and sharded) parameters and casts them to its dtype.
"""
from collections.abc import Iterator

import torch
from torch import nn

from inference_engine.model_executor.loader.dummy import initialize_dummy_weights
from inference_engine.model_executor.loader.gguf_loader import iterate_gguf_weights
from inference_engine.model_executor.loader.pt_loader import iterate_pt_weights
from inference_engine.model_executor.loader.safetensors_loader import iterate_safetensors_weights
from inference_engine.transformers_utils.embedded import model_or_default
from inference_engine.transformers_utils.load_format import resolve_load_format

__all__ = ["default_weight_loader", "initialize_dummy_weights", "iterate_weights"]


def default_weight_loader(param: nn.Parameter, loaded: torch.Tensor) -> None:
    """The loader of a parameter that every rank holds whole (norms, biases of replicated layers)."""
    param.data.copy_(loaded)


def iterate_weights(model: str | None, load_format: str,
                    hf_config) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (Hugging Face name, tensor) for every checkpoint tensor of `model`.

    GGUF tensors are dequantized to float32 and un-permuted; safetensors tensors keep their
    stored dtype. Dummy weights are not iterated: call `initialize_dummy_weights` instead.
    """
    model = model_or_default(model)
    load_format = resolve_load_format(model, load_format)
    if load_format == "gguf":
        return iterate_gguf_weights(model, hf_config)
    if load_format == "safetensors":
        return iterate_safetensors_weights(model)
    if load_format == "pt":
        return iterate_pt_weights(model)
    raise ValueError("dummy weights are not iterated; call initialize_dummy_weights(model)")
