"""Builds the model for a config and fills its weights (checkpoint, GGUF or dummy)."""
import torch
from torch import nn

from inference_engine.config import ModelConfig
from inference_engine.model_executor.layers.quantization.fp8 import quantize_linear_layers
from inference_engine.model_executor.loader import initialize_dummy_weights, iterate_weights
from inference_engine.model_executor.models import get_model_class


def get_model(model_config: ModelConfig, device: torch.device) -> nn.Module:
    model_class = get_model_class(model_config.hf_config)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(model_config.torch_dtype)
    try:
        with torch.device(device):
            model = model_class(model_config.hf_config)
    finally:
        torch.set_default_dtype(previous)
    if model_config.load_format == "dummy":
        initialize_dummy_weights(model, seed=model_config.seed)
    else:
        model.load_weights(iterate_weights(model_config.model, model_config.load_format,
                                           model_config.hf_config))
    if model_config.quantization == "fp8":
        quantize_linear_layers(model)
    return model.eval()
