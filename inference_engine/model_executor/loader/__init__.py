"""Where a model's weights come from: safetensors folder, GGUF file, or random (dummy).

Every source yields Hugging Face parameter names (`model.layers.0.self_attn.q_proj.weight`, ...)
with tensors in Hugging Face layout; the model's `load_weights` maps them onto its own
(possibly fused and sharded) parameters and casts them to its dtype.
"""
import glob
import os
from collections.abc import Iterator

import torch
from torch import nn

from inference_engine.model_executor.loader.dummy import initialize_dummy_weights
from inference_engine.model_executor.loader.gguf_loader import iterate_gguf_weights
from inference_engine.model_executor.loader.safetensors_loader import iterate_safetensors_weights
from inference_engine.transformers_utils.config import PRESETS, check_model_path, is_gguf
from inference_engine.transformers_utils.embedded import model_or_default

LOAD_FORMATS = ("auto", "safetensors", "gguf", "dummy")

__all__ = ["LOAD_FORMATS", "default_weight_loader", "initialize_dummy_weights", "iterate_weights",
           "resolve_load_format"]


def default_weight_loader(param: nn.Parameter, loaded: torch.Tensor) -> None:
    """The loader of a parameter that every rank holds whole (norms, biases of replicated layers)."""
    param.data.copy_(loaded)


def resolve_load_format(model: str | None, load_format: str = "auto") -> str:
    """The concrete format ('safetensors', 'gguf' or 'dummy') for `model`, checked against it."""
    if load_format not in LOAD_FORMATS:
        raise ValueError(f"load_format must be one of {LOAD_FORMATS}, got {load_format!r}")
    model = model_or_default(model)
    if load_format == "dummy":
        return "dummy"
    if model in PRESETS:
        raise ValueError(f"preset {model!r} has no weights: use load_format='dummy'")
    check_model_path(model)
    if is_gguf(model):
        if load_format not in ("auto", "gguf"):
            raise ValueError(f"{model} is a GGUF file; load_format {load_format!r} cannot read it")
        return "gguf"
    if load_format == "gguf":
        raise ValueError(f"load_format 'gguf' needs a .gguf file, got the folder {model}")
    if not glob.glob(os.path.join(model, "*.safetensors")):
        raise FileNotFoundError(f"no *.safetensors files in {model} (only safetensors checkpoints "
                                "are supported; use load_format='dummy' for random weights)")
    return "safetensors"


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
    raise ValueError("dummy weights are not iterated; call initialize_dummy_weights(model)")
