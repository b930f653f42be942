"""Bloom family (BLOOM, BLOOMZ): LayerNorm blocks, ALiBi attention (no rotary), GELU MLP and a
head tied to the embeddings."""
from collections.abc import Iterable

import torch
from torch import nn

from inference_engine.distributed.parallel_state import get_tp_rank
from inference_engine.model_executor.layers.activation import GeluTanh
from inference_engine.model_executor.layers.attention import Attention, get_alibi_slopes
from inference_engine.model_executor.layers.layernorm import LayerNorm
from inference_engine.model_executor.layers.linear import (ColumnParallelLinear, QKVParallelLinear,
                                                           RowParallelLinear)
from inference_engine.model_executor.layers.vocab_embedding import (ParallelLMHead,
                                                                    VocabParallelEmbedding)
from inference_engine.model_executor.loader import default_weight_loader


class BloomAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden, num_heads = config.hidden_size, config.n_head
        head_size = hidden // num_heads
        self.query_key_value = QKVParallelLinear(hidden, head_size, num_heads, num_heads, bias=True)
        self.dense = RowParallelLinear(hidden, hidden, bias=True)
        heads_here = self.query_key_value.num_heads
        self.size = heads_here * head_size
        # This rank's heads are a contiguous range of the model's, and so are their slopes.
        first = get_tp_rank() * heads_here
        slopes = get_alibi_slopes(num_heads)[first:first + heads_here]
        self.attn = Attention(heads_here, head_size, head_size ** -0.5, heads_here, slopes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query_key_value(hidden).split([self.size] * 3, dim=-1)
        return self.dense(self.attn(q, k, v))


class BloomMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden = config.hidden_size
        self.dense_h_to_4h = ColumnParallelLinear(hidden, 4 * hidden, bias=True)
        self.act = GeluTanh()
        self.dense_4h_to_h = RowParallelLinear(4 * hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(self.act(self.dense_h_to_4h(x)))


class BloomBlock(nn.Module):
    """Pre-LayerNorm block. The residual added after attention and after the MLP is the block's
    input (the default), or with `apply_residual_connection_post_layernorm` its normed input."""

    def __init__(self, config):
        super().__init__()
        eps = config.layer_norm_epsilon
        self.input_layernorm = LayerNorm(config.hidden_size, eps)
        self.self_attention = BloomAttention(config)
        self.post_attention_layernorm = LayerNorm(config.hidden_size, eps)
        self.mlp = BloomMLP(config)
        self.residual_is_normed = config.apply_residual_connection_post_layernorm

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        normed = self.input_layernorm(hidden)
        hidden = self.self_attention(normed) + (normed if self.residual_is_normed else hidden)
        normed = self.post_attention_layernorm(hidden)
        return self.mlp(normed) + (normed if self.residual_is_normed else hidden)


class BloomModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        eps = config.layer_norm_epsilon
        self.word_embeddings = VocabParallelEmbedding(config.vocab_size, config.hidden_size)
        self.word_embeddings_layernorm = LayerNorm(config.hidden_size, eps)
        self.h = nn.ModuleList(BloomBlock(config) for _ in range(config.num_hidden_layers))
        self.ln_f = LayerNorm(config.hidden_size, eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.word_embeddings_layernorm(self.word_embeddings(input_ids))
        for block in self.h:
            hidden = block(hidden)
        return self.ln_f(hidden)


class BloomForCausalLM(nn.Module):
    """Loads Hugging Face Bloom checkpoints, whose names may lack the `transformer.` prefix (those
    saved from BloomModel, as bigscience's are); the fused query_key_value is de-interleaved."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = BloomModel(config)
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size)
        if getattr(config, "tie_word_embeddings", True):
            self.lm_head.weight = self.transformer.word_embeddings.weight

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        # ALiBi needs no positions: the attention ops derive them from the sequence lengths.
        return self.transformer(input_ids)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """Logits [N, vocab] for the given hidden states, on rank 0 (None elsewhere)."""
        return self.lm_head(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        params = dict(self.named_parameters(remove_duplicate=False))
        tied = getattr(self.config, "tie_word_embeddings", True)
        for name, tensor in weights:
            if not name.startswith(("transformer.", "lm_head.")):
                name = "transformer." + name
            if tied and name == "lm_head.weight":
                continue
            if name not in params:
                raise ValueError(f"checkpoint tensor {name!r} has no place in {type(self).__name__}")
            param = params[name]
            if "query_key_value" in name:
                self._load_qkv(param, tensor)
            else:
                getattr(param, "weight_loader", default_weight_loader)(param, tensor)

    def _load_qkv(self, param: nn.Parameter, tensor: torch.Tensor) -> None:
        """Bloom interleaves the fused projection's rows by head ([num_heads, 3, head_size]);
        QKVParallelLinear wants all queries, then keys, then values, each split by heads."""
        per_head = tensor.unflatten(0, (self.config.n_head, 3, -1))
        for shard_id, part in zip(("q", "k", "v"), per_head.unbind(1)):
            param.weight_loader(param, part.flatten(0, 1), shard_id)
