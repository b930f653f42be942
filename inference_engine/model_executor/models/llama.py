"""Llama family (Llama 2/3, SmolLM2, Qwen3; Mistral and Qwen2 within their sliding window)."""
from collections.abc import Iterable

import torch
from torch import nn

from inference_engine.model_executor.layers.activation import GatedActivation
from inference_engine.model_executor.layers.attention import Attention
from inference_engine.model_executor.layers.layernorm import RMSNorm
from inference_engine.model_executor.layers.linear import (MergedColumnParallelLinear,
                                                           QKVParallelLinear, RowParallelLinear)
from inference_engine.model_executor.layers.rotary_embedding import RotaryEmbedding
from inference_engine.model_executor.layers.vocab_embedding import (ParallelLMHead,
                                                                    VocabParallelEmbedding)
from inference_engine.model_executor.loader import default_weight_loader


class LlamaAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        num_heads = config.num_attention_heads
        num_kv_heads = getattr(config, "num_key_value_heads", None) or num_heads
        head_size = getattr(config, "head_dim", None) or config.hidden_size // num_heads
        # Llama's attention_bias puts biases on q, k, v and o; Qwen2 (no such field) has them on
        # q, k and v only.
        bias = getattr(config, "attention_bias", False)
        qkv_bias = getattr(config, "attention_bias", config.model_type == "qwen2")
        self.qkv_proj = QKVParallelLinear(config.hidden_size, head_size, num_heads, num_kv_heads,
                                          qkv_bias)
        self.o_proj = RowParallelLinear(num_heads * head_size, config.hidden_size, bias)
        self.q_size = self.qkv_proj.num_heads * head_size
        self.kv_size = self.qkv_proj.num_kv_heads * head_size
        self.head_size = head_size
        # Qwen3 normalizes each head's query and key (RMSNorm over head_size) before rotary.
        self.qk_norm = config.model_type in ("qwen3", "qwen3_moe")
        if self.qk_norm:
            self.q_norm = RMSNorm(head_size, config.rms_norm_eps)
            self.k_norm = RMSNorm(head_size, config.rms_norm_eps)
        rotary = RotaryEmbedding(config, head_size, config.max_position_embeddings)
        self.attn = Attention(self.qkv_proj.num_heads, head_size, head_size ** -0.5,
                              self.qkv_proj.num_kv_heads, rotary_emb=rotary)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_proj(hidden).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        if self.qk_norm:
            q = self.q_norm(q.reshape(-1, self.head_size)).view(q.shape)
            k = self.k_norm(k.reshape(-1, self.head_size)).view(k.shape)
        return self.o_proj(self.attn(q, k, v, positions))


class LlamaMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        size = config.intermediate_size
        bias = getattr(config, "mlp_bias", False)
        self.gate_up_proj = MergedColumnParallelLinear(config.hidden_size, [size, size], bias)
        self.down_proj = RowParallelLinear(size, config.hidden_size, bias)
        self.act_fn = GatedActivation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_up_proj(x)))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config, mlp: nn.Module):
        super().__init__()
        self.self_attn = LlamaAttention(config)
        self.mlp = mlp
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor,
                residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if residual is None:
            residual, hidden = hidden, self.input_layernorm(hidden)
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(positions, hidden)
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual


class LlamaModel(nn.Module):
    def __init__(self, config, make_mlp):
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config, make_mlp(config, i))
                                    for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embed_tokens(input_ids), None
        for layer in self.layers:
            hidden, residual = layer(positions, hidden, residual)
        hidden, _ = self.norm(hidden, residual)
        return hidden


class LlamaForCausalLM(nn.Module):
    """Maps checkpoint names onto the fused modules: q/k/v -> qkv_proj, gate/up -> gate_up_proj."""

    packed_modules = {
        "q_proj": ("qkv_proj", "q"), "k_proj": ("qkv_proj", "k"), "v_proj": ("qkv_proj", "v"),
        "gate_proj": ("gate_up_proj", 0), "up_proj": ("gate_up_proj", 1),
    }

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config, self.make_mlp)
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size)
        if getattr(config, "tie_word_embeddings", False):
            self.lm_head.weight = self.model.embed_tokens.weight

    @staticmethod
    def make_mlp(config, layer_index: int) -> nn.Module:
        """Layer `layer_index`'s MLP (mixture-of-experts models make some sparse)."""
        return LlamaMLP(config)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, positions)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """Logits [N, vocab] for the given hidden states, on rank 0 (None elsewhere)."""
        return self.lm_head(hidden)

    # Set by load_weights when the checkpoint has no LM head: an embedding model, saved as the
    # bare transformer (LlamaModel, MistralModel, Qwen2Model, Qwen3Model; e5-mistral,
    # gte-Qwen2, Qwen3-Embedding), which can embed but not generate.
    embedding_only = False

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        params = dict(self.named_parameters(remove_duplicate=False))
        tied = getattr(self.config, "tie_word_embeddings", False)
        head_loaded = False
        for name, tensor in weights:
            if not name.startswith(("model.", "lm_head.")):
                name = "model." + name  # a bare transformer's names
            head_loaded |= name == "lm_head.weight"
            if "rotary_emb.inv_freq" in name or (tied and name == "lm_head.weight"):
                continue
            for ckpt_name, (fused_name, shard_id) in self.packed_modules.items():
                if ckpt_name in name:
                    param = params[name.replace(ckpt_name, fused_name)]
                    param.weight_loader(param, tensor, shard_id)
                    break
            else:
                if name not in params:
                    raise ValueError(f"checkpoint tensor {name!r} has no place in {type(self).__name__}")
                param = params[name]
                getattr(param, "weight_loader", default_weight_loader)(param, tensor)
        if not (tied or head_loaded):
            self.embedding_only = True
            self.lm_head.weight.data.zero_()  # defined, if never read for tokens

