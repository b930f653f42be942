"""Model registry: Hugging Face architecture name -> model class."""
from torch import nn

from inference_engine.config import MODEL_IMPLS
from inference_engine.model_executor.models.bloom import BloomForCausalLM
from inference_engine.model_executor.models.llama import LlamaForCausalLM
from inference_engine.model_executor.models.llama_moe import MoeLlamaForCausalLM
from inference_engine.model_executor.models.phi3 import Phi3ForCausalLM
from inference_engine.model_executor.models.transformers_fallback import (TransformersForCausalLM,
                                                                          causal_lm_class)

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


def resolve_model_impl(config, model_impl: str = "auto") -> str:
    """"native" or "transformers": which implementation runs the model. "auto" takes the native
    class where there is one, else transformers' own model (models/transformers_fallback.py)."""
    if model_impl not in MODEL_IMPLS:
        raise ValueError(f"model_impl must be one of {', '.join(MODEL_IMPLS)}; got {model_impl!r}")
    archs = getattr(config, "architectures", None) or []
    native = any(arch in MODEL_REGISTRY for arch in archs)
    if model_impl == "native" and not native:
        raise ValueError(f"no native class for architecture {archs} (native: "
                         f"{', '.join(sorted(MODEL_REGISTRY))}); --model-impl auto or "
                         "transformers runs it through transformers")
    if model_impl == "transformers" or not native:
        causal_lm_class(config)  # refuses, with the reason, what the fallback cannot run
        return "transformers"
    return "native"


def get_model_class(config, model_impl: str = "auto") -> type[nn.Module]:
    if resolve_model_impl(config, model_impl) == "transformers":
        return TransformersForCausalLM
    archs = getattr(config, "architectures", None) or []
    return next(MODEL_REGISTRY[arch] for arch in archs if arch in MODEL_REGISTRY)
