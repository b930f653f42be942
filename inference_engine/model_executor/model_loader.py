"""Builds the model for a config and fills its weights (checkpoint, GGUF or dummy)."""
import torch
from torch import nn

from inference_engine.config import ModelConfig
from inference_engine.model_executor.layers.kv_cache_scales import (apply_kv_cache_scales,
                                                                    take_kv_cache_scales)
from inference_engine.model_executor.layers.linear import LinearBase
from inference_engine.model_executor.layers.quantization import (building_with,
                                                                 get_quantization_config,
                                                                 resolve_quantization)
from inference_engine.model_executor.loader import initialize_dummy_weights, iterate_weights
from inference_engine.model_executor.models import get_model_class


def get_model(model_config: ModelConfig, device: torch.device) -> nn.Module:
    model_class = get_model_class(model_config.hf_config, model_config.model_impl)
    hf_config = model_config.hf_config
    method = resolve_quantization(hf_config, model_config.quantization)
    quantization = get_quantization_config(method, hf_config)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(model_config.torch_dtype)
    try:
        with torch.device(device), building_with(quantization):
            model = model_class(model_config.hf_config)
    finally:
        torch.set_default_dtype(previous)
    if model_config.load_format == "dummy":
        initialize_dummy_weights(model, seed=model_config.seed)
    else:
        kv_scales: dict[tuple[str, str], float] = {}
        model.load_weights(take_kv_cache_scales(iterate_weights(
            model_config.model, model_config.load_format, model_config.hf_config), kv_scales))
        apply_kv_cache_scales(model, kv_scales)
    for layer in model.modules():
        if isinstance(layer, LinearBase):
            layer.quant_method.process_weights_after_loading(layer)
    if quantization is not None and device.type == "cuda":
        torch.cuda.empty_cache()  # what the methods replaced, for the KV cache
    return model.eval()
