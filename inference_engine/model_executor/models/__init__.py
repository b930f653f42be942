"""Model registry: Hugging Face architecture name -> model class."""
from torch import nn

from inference_engine.model_executor.models.bloom import BloomForCausalLM
from inference_engine.model_executor.models.llama import LlamaForCausalLM
from inference_engine.model_executor.models.llama_moe import MoeLlamaForCausalLM
from inference_engine.model_executor.models.phi3 import Phi3ForCausalLM

MODEL_REGISTRY: dict[str, type[nn.Module]] = {
    "BloomForCausalLM": BloomForCausalLM,
    "LlamaForCausalLM": LlamaForCausalLM,
    # Bare transformers without an LM head: embedding models (LlamaForCausalLM.embedding_only).
    "LlamaModel": LlamaForCausalLM,
    "MistralModel": LlamaForCausalLM,
    "Qwen2Model": LlamaForCausalLM,
    "Qwen3Model": LlamaForCausalLM,
    "MistralForCausalLM": LlamaForCausalLM,
    "MixtralForCausalLM": MoeLlamaForCausalLM,
    "Phi3ForCausalLM": Phi3ForCausalLM,
    "Qwen2ForCausalLM": LlamaForCausalLM,
    "Qwen3ForCausalLM": LlamaForCausalLM,
    "Qwen3MoeForCausalLM": MoeLlamaForCausalLM,
}


def get_model_class(config) -> type[nn.Module]:
    archs = getattr(config, "architectures", None) or []
    for arch in archs:
        if arch in MODEL_REGISTRY:
            return MODEL_REGISTRY[arch]
    raise ValueError(f"unsupported model architecture {archs}; supported: {sorted(MODEL_REGISTRY)}")
