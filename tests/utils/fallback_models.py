"""Tiny random checkpoints of architectures with no native class here, for the transformers
fallback (model_executor/models/transformers_fallback.py).

    path = write_fallback_checkpoint(tmp_path, "gpt_neox")

Each is 2 layers over the embedded tokenizer's vocabulary (so the folder's tokenizer fits),
with 4 query heads. The weights are transformers' seeded initialization plus noise on every
parameter: at the initialization's scale a tiny model repeats one token, which would hide a
wrong attention or position; with the noise, greedy continuations vary token to token.
"""
import torch
import transformers as tf
from transformers import AutoModelForCausalLM

from utils.hf_checkpoint import write_hf_checkpoint

_COMMON = dict(vocab_size=49152, hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
               intermediate_size=128, max_position_embeddings=512, bos_token_id=1,
               eos_token_id=2, pad_token_id=2, tie_word_embeddings=False)

# model type: (config class, architecture, its own fields)
FALLBACK_ARCHITECTURES = {
    # partial rotary (a quarter of each head), parallel attention and MLP
    "gpt_neox": (tf.GPTNeoXConfig, "GPTNeoXForCausalLM", dict(rotary_pct=0.25)),
    # q/k normed over all heads, norms after attention and MLP, GQA
    "olmo2": (tf.Olmo2Config, "Olmo2ForCausalLM", dict(num_key_value_heads=2)),
    # its own attention scale, embedding and residual multipliers, logits divided
    "granite": (tf.GraniteConfig, "GraniteForCausalLM", dict(
        num_key_value_heads=2, attention_multiplier=0.2, embedding_multiplier=3.0,
        residual_multiplier=0.5, logits_scaling=2.0)),
    # biases everywhere, LayerNorm, GQA, a tied head
    "starcoder2": (tf.Starcoder2Config, "Starcoder2ForCausalLM", dict(
        num_key_value_heads=2, sliding_window=None, tie_word_embeddings=True)),
    # Phi-2: partial rotary, parallel blocks, LayerNorm with bias, GELU
    "phi": (tf.PhiConfig, "PhiForCausalLM", dict(partial_rotary_factor=0.5)),
    # learned absolute positions, Conv1D projections
    "gpt2": (tf.GPT2Config, "GPT2LMHeadModel", dict(n_embd=64, n_head=4, n_layer=2,
                                                     n_positions=512)),
}


def fallback_config(model_type: str, **overrides):
    config_class, arch, fields = FALLBACK_ARCHITECTURES[model_type]
    return config_class(**{**_COMMON, "architectures": [arch], **fields, **overrides})


def noisy_state_dict(config, seed: int = 0, noise: float = 0.2) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param), alpha=noise)
        state_dict = model.state_dict()
    if config.tie_word_embeddings:  # a tied head is not stored, as in real checkpoints
        for name in [n for n in state_dict if n.startswith("lm_head.")]:
            del state_dict[name]
    return state_dict


def write_fallback_checkpoint(path, model_type: str, seed: int = 0, tokenizer: bool = True,
                              **overrides) -> str:
    config = fallback_config(model_type, **overrides)
    return write_hf_checkpoint(path, config, state_dict=noisy_state_dict(config, seed),
                               tokenizer=tokenizer)
