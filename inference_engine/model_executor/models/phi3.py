"""Phi-3 and Phi-4 (Phi3ForCausalLM): Llama's layers with q/k/v and gate/up stored fused in the
checkpoint. Phi-3's long-context variants scale rotary with LongRoPE, whose frequencies change
with the sequence's length: those are refused rather than run with the wrong ones."""
from collections.abc import Iterable

import torch

from inference_engine.model_executor.layers.rotary_embedding import rope_parameters
from inference_engine.model_executor.models.llama import LlamaForCausalLM


class Phi3ForCausalLM(LlamaForCausalLM):
    def __init__(self, config):
        rope_type, _ = rope_parameters(config)
        if rope_type not in ("default", None):
            raise ValueError(f"Phi-3 with {rope_type!r} rotary scaling is not supported (its "
                             "frequencies depend on each sequence's length); the 4k-context "
                             "models and Phi-4 are")
        super().__init__(config)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Splits the fused tensors into Llama's names, whose loaders shard them per rank."""
        config = self.config
        head_size = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads)
        q_size = config.num_attention_heads * head_size
        kv_size = (getattr(config, "num_key_value_heads", None)
                   or config.num_attention_heads) * head_size

        def unfused():
            for name, tensor in weights:
                if ".qkv_proj." in name:
                    parts = tensor.split([q_size, kv_size, kv_size], dim=0)
                    yield from zip((name.replace("qkv_proj", p) for p in
                                    ("q_proj", "k_proj", "v_proj")), parts)
                elif ".gate_up_proj." in name:
                    parts = tensor.chunk(2, dim=0)
                    yield from zip((name.replace("gate_up_proj", p) for p in
                                    ("gate_proj", "up_proj")), parts)
                else:
                    yield name, tensor

        super().load_weights(unfused())
