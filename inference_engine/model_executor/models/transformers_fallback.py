"""Any decoder-only transformers model that has no native class here, run by transformers
itself with its attention routed to the paged KV cache (vLLM's Transformers backend).

transformers lets a model's attention be swapped by name (`AttentionInterface`): each attention
module hands its rotated queries, keys and values to the function registered under
`config._attn_implementation`. Ours gives them to an `Attention` layer of our own, attached to
that module, which stores the keys and values in the paged cache and attends with our kernels.
The model runs on the step's tokens laid out as one row ([1, T], every sequence's new tokens
one after another, with their own positions), so it batches continuously, shares prefixes and
runs in CUDA graphs like a native model. Masks are not built: the paged kernels know where each
sequence starts and ends (transformers skips mask creation for a registered implementation it
has no mask function for).
"""
import copy
from collections.abc import Iterable

import torch
from torch import nn

from inference_engine.model_executor.layers.attention import Attention
from inference_engine.model_executor.models.transformers_probe import probe_attention

ATTENTION_NAME = "inference_engine_paged"


def paged_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                            value: torch.Tensor, attention_mask, **kwargs):
    """transformers' attention-function signature: query [1, heads, T, head_size], key and
    value [1, kv_heads, T, head_size] -> ([1, T, heads, head_size], no weights)."""
    t = query.shape[2]
    q = query[0].transpose(0, 1).reshape(t, -1)
    k = key[0].transpose(0, 1).reshape(t, -1)
    v = value[0].transpose(0, 1).reshape(t, -1)
    out = module.paged_attention(q, k, v)
    return out.view(1, t, query.shape[1], query.shape[3]), None


def _register() -> None:
    from transformers import AttentionInterface
    AttentionInterface.register(ATTENTION_NAME, paged_attention_forward)


def causal_lm_class(hf_config) -> type:
    """The transformers class that `hf_config` names, which must be a causal LM whose attention
    goes through the attention interface."""
    import transformers
    from transformers import AutoModelForCausalLM
    archs = getattr(hf_config, "architectures", None) or []
    cls = next((getattr(transformers, a) for a in archs
                if a.endswith("ForCausalLM") and hasattr(transformers, a)), None)
    if cls is None:
        mapping = AutoModelForCausalLM._model_mapping
        if type(hf_config) not in mapping:
            raise ValueError(f"transformers has no causal LM for architecture {archs} (model "
                             f"type {hf_config.model_type!r}); it cannot be served")
        cls = mapping[type(hf_config)]
    if not getattr(cls, "_supports_attention_backend", False):
        raise ValueError(f"transformers' {cls.__name__} does not route its attention through "
                         "the attention interface, so it cannot run on the paged KV cache "
                         "(--model-impl transformers needs that)")
    return cls


class TransformersForCausalLM(nn.Module):
    """The transformers model for `hf_config`, with a paged `Attention` in each attention module
    and the interface of our native models (forward -> hidden states, compute_logits,
    load_weights)."""

    def __init__(self, hf_config):
        super().__init__()
        from transformers.initialization import no_init_weights
        _register()
        self.config = hf_config
        config = copy.deepcopy(hf_config)  # transformers writes its choices into the config
        cls = causal_lm_class(config)
        # Parameters are filled by load_weights (or the dummy initializer): skip the random
        # init, which takes minutes for a large model on a CPU.
        with no_init_weights():
            self.hf_model = cls._from_config(config, attn_implementation=ATTENTION_NAME,
                                             dtype=torch.get_default_dtype())
        self.hf_model.tie_weights()  # (transformers ties them in the init skipped above)
        self.hf_model.eval()
        self.decoder = self.hf_model.base_model
        self.lm_head = self.hf_model.get_output_embeddings()
        for module, shape in probe_attention(self.decoder, hf_config).items():
            module.paged_attention = Attention(shape.num_heads, shape.head_size, shape.scale,
                                               shape.num_kv_heads)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.decoder(input_ids=input_ids[None], position_ids=positions[None],
                           use_cache=False)
        return out.last_hidden_state[0]

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [N, vocab]: the LM head, then the scalings transformers' causal LMs apply to
        it (Granite divides, Cohere multiplies, Gemma 2 soft-caps)."""
        logits = self.lm_head(hidden)
        cfg = self.config
        if getattr(cfg, "logits_scaling", None):
            logits = logits / cfg.logits_scaling
        if getattr(cfg, "logit_scale", None):
            logits = logits * cfg.logit_scale
        cap = getattr(cfg, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    embedding_only = False

    @torch.no_grad()
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Checkpoint names are the transformers model's own (a bare base model's lack its
        prefix); buffers a checkpoint carries (rotary frequencies, causal masks) are computed
        by the model and skipped."""
        params = dict(self.hf_model.named_parameters(remove_duplicate=False))
        buffers = {name for name, _ in self.hf_model.named_buffers()}
        prefix = self.hf_model.base_model_prefix + "."
        loaded = set()
        for name, tensor in weights:
            if name not in params and name not in buffers and prefix + name in params:
                name = prefix + name
            if name not in params:
                if name in buffers or name.endswith((".inv_freq", ".masked_bias", ".attn.bias")):
                    continue
                raise ValueError(f"checkpoint tensor {name!r} has no place in "
                                 f"{type(self.hf_model).__name__}")
            params[name].copy_(tensor)
            loaded.add(id(params[name]))
        missing = [n for n, p in params.items() if id(p) not in loaded]
        if missing and all(params[n] is self.lm_head.weight for n in missing):
            self.embedding_only = True  # a bare transformer: it embeds, it does not generate
            self.lm_head.weight.zero_()
        elif missing:
            raise ValueError(f"the checkpoint lacks {len(missing)} of "
                             f"{type(self.hf_model).__name__}'s weights: {missing[:5]}")
