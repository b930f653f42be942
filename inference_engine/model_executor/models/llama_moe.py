"""Mixture-of-experts Llamas: Mixtral and Qwen3-MoE. Llama's (Qwen3's) attention; each layer's
MLP, or each sparse one's, is a router over SwiGLU experts (layers/fused_moe.py)."""
import re
from collections.abc import Iterable

import torch
from torch import nn

from inference_engine.model_executor.layers.fused_moe import FusedMoE
from inference_engine.model_executor.layers.linear import ReplicatedLinear
from inference_engine.model_executor.models.llama import LlamaForCausalLM, LlamaMLP

# A checkpoint's expert matrices: Mixtral's block_sparse_moe.experts.E.w1/w3/w2, Qwen3-MoE's
# mlp.experts.E.gate_proj/up_proj/down_proj.
_EXPERT = re.compile(r"^(.*)\.(?:block_sparse_moe|mlp)\.experts\.(\d+)\."
                     r"(w1|w3|w2|gate_proj|up_proj|down_proj)\.weight$")
_PART = {"w1": "gate", "gate_proj": "gate", "w3": "up", "up_proj": "up", "w2": "down",
         "down_proj": "down"}


class SparseMoeBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        num_experts = getattr(config, "num_local_experts", None) or config.num_experts
        size = getattr(config, "moe_intermediate_size", None) or config.intermediate_size
        # The router stays unquantized (as quantized checkpoints keep it): small, and it picks
        # the experts.
        self.gate = ReplicatedLinear(config.hidden_size, num_experts, bias=False, quantize=False)
        # Mixtral always renormalizes the top-k weights; Qwen3-MoE as norm_topk_prob says.
        self.experts = FusedMoE(num_experts, config.num_experts_per_tok, config.hidden_size, size,
                                getattr(config, "norm_topk_prob", True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.experts(x, self.gate(x))


class MoeLlamaForCausalLM(LlamaForCausalLM):
    @staticmethod
    def make_mlp(config, layer_index: int) -> nn.Module:
        # Qwen3-MoE may keep some layers dense (mlp_only_layers, decoder_sparse_step).
        step = getattr(config, "decoder_sparse_step", 1) or 1
        sparse = (layer_index not in (getattr(config, "mlp_only_layers", None) or [])
                  and (layer_index + 1) % step == 0)
        return SparseMoeBlock(config) if sparse else LlamaMLP(config)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        params = dict(self.named_parameters())

        def others():
            for name, tensor in weights:
                expert = _EXPERT.match(name)
                if expert is None:
                    yield name.replace(".block_sparse_moe.gate.", ".mlp.gate."), tensor
                    continue
                layer, index, matrix = expert.groups()
                part = _PART[matrix]
                param = params[f"{layer}.mlp.experts.{'w2' if part == 'down' else 'w13'}"]
                param.weight_loader(param, tensor, int(index), part)

        super().load_weights(others())
