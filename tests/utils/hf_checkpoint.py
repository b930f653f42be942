"""Hugging Face checkpoint folders for tests: the embedded model, or tiny random Llamas, Qwen2s and
Blooms.

The folders load with both our engine and `transformers.AutoModelForCausalLM.from_pretrained`,
so tests can compare the two token for token without any download.

    path = embedded_hf_checkpoint()                      # SmolLM2-135M, cached across runs
    write_hf_checkpoint(tmp_path, tiny_llama_config())   # random weights, a fraction of a second
    write_hf_checkpoint(tmp_path, tiny_llama_config(tie_word_embeddings=True), max_shard_size="2MB")
    write_bloom_checkpoint(tmp_path, tiny_bloom_config(n_head=6, hidden_size=96))
    write_hf_checkpoint(tmp_path, tiny_qwen2_config())    # Qwen2: biases on q, k and v
    write_sentence_transformers_pooling(path, pooling_mode_mean_tokens=True)  # + modules.json
"""
import copy
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import load_file, save_file
from transformers import (AutoModelForCausalLM, BloomConfig, BloomForCausalLM, LlamaConfig,
                          MixtralConfig, Phi3Config, PretrainedConfig, Qwen2Config, Qwen3Config,
                          Qwen3MoeConfig)

from inference_engine.model_executor.loader import iterate_weights
from inference_engine.transformers_utils.config import get_hf_config
from inference_engine.transformers_utils.embedded import cache_dir, embedded_model_path
from inference_engine.transformers_utils.tokenizer import get_tokenizer


# What the tiny random configs share: the embedded tokenizer's vocabulary (so a checkpoint's
# tokenizer fits), 4 query heads over 2 KV heads, and 512 positions.
_TINY = dict(vocab_size=49152, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=2)


def _tiny(config_class, architecture: str, fields: dict, overrides: dict):
    return config_class(**{**_TINY, "architectures": [architecture], **fields, **overrides})


def tiny_llama_config(**overrides) -> LlamaConfig:
    """A 2-layer Llama with grouped-query attention (4 query heads, 2 KV heads, head_dim 16).

    The vocabulary is the embedded tokenizer's (49152), so the checkpoint's tokenizer fits it.
    """
    return _tiny(LlamaConfig, "LlamaForCausalLM", dict(
        intermediate_size=128, num_hidden_layers=2, head_dim=16, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False), overrides)


def tiny_qwen2_config(**overrides) -> Qwen2Config:
    """A 2-layer Qwen2 (biases on q, k and v) with the sizes of tiny_llama_config."""
    return _tiny(Qwen2Config, "Qwen2ForCausalLM", dict(
        intermediate_size=128, num_hidden_layers=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True), overrides)


def tiny_qwen3_config(**overrides) -> Qwen3Config:
    """A 2-layer Qwen3 (each head's q and k RMS-normalized) with heads of 32 over a hidden size of
    64: head_dim is not hidden_size / heads."""
    return _tiny(Qwen3Config, "Qwen3ForCausalLM", dict(
        intermediate_size=128, num_hidden_layers=2, head_dim=32, rms_norm_eps=1e-6,
        rope_theta=1000000.0, tie_word_embeddings=True), overrides)


def tiny_phi3_config(**overrides) -> Phi3Config:
    """A 2-layer Phi-3 (q/k/v and gate/up fused in the checkpoint) with the sizes of
    tiny_llama_config."""
    return _tiny(Phi3Config, "Phi3ForCausalLM", dict(
        intermediate_size=128, num_hidden_layers=2, original_max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, sliding_window=None),
        overrides)


def tiny_mixtral_config(**overrides) -> MixtralConfig:
    """A 2-layer Mixtral: 4 experts, 2 a token, over tiny_llama_config's sizes."""
    return _tiny(MixtralConfig, "MixtralForCausalLM", dict(
        intermediate_size=96, num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=2,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, sliding_window=None),
        overrides)


def tiny_qwen3_moe_config(**overrides) -> Qwen3MoeConfig:
    """A 3-layer Qwen3-MoE: 8 experts, 2 a token, the middle layer dense."""
    return _tiny(Qwen3MoeConfig, "Qwen3MoeForCausalLM", dict(
        intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=3, head_dim=32,
        num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[1],
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False), overrides)


def tiny_bloom_config(**overrides) -> BloomConfig:
    """A 4-layer Bloom with 4 heads of 16, over the embedded tokenizer's vocabulary (49152)."""
    fields = dict(architectures=["BloomForCausalLM"], vocab_size=49152, hidden_size=64, n_layer=4,
                  n_head=4, layer_norm_epsilon=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    fields.update(overrides)
    return BloomConfig(**fields)


def write_bloom_checkpoint(path, config: BloomConfig, *, seed: int = 0,
                           strip_prefix: bool = False) -> str:
    """A random Bloom written by transformers' own `save_pretrained` (float32 safetensors,
    `transformer.` names, the tied head left out), with the embedded tokenizer; returns its path.

    transformers starts biases at zero and LayerNorms at the identity: seeded noise on every
    parameter makes them matter, so that a bias or norm loaded wrongly changes the tokens. With
    `strip_prefix` the names lose `transformer.`, as in checkpoints saved from BloomModel
    (bigscience's own).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BloomForCausalLM(config)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param), alpha=0.1)
    model.save_pretrained(path)
    if strip_prefix:
        weights = Path(path) / "model.safetensors"
        tensors = {name.removeprefix("transformer."): t for name, t in load_file(weights).items()}
        save_file(tensors, weights, metadata={"format": "pt"})
    get_tokenizer(embedded_model_path()).save_pretrained(path)
    return str(path)


def write_moe_checkpoint(path, config: PretrainedConfig, seed: int = 0,
                         tokenizer: bool = True) -> str:
    """A random mixture-of-experts checkpoint (float32) as transformers saves it: one tensor per
    expert matrix under the names published checkpoints use (its own modules stack them), with
    the embedded tokenizer unless `tokenizer` is False."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):  # started at one: a wrong load must show
                    param.add_(torch.randn_like(param), alpha=0.1)
    model.save_pretrained(path)
    if tokenizer:
        get_tokenizer(embedded_model_path()).save_pretrained(path)
    return str(path)


def write_hf_checkpoint(path, config: PretrainedConfig | None = None, *, seed: int = 0,
                        max_shard_size: int | str = "5GB", dtype: torch.dtype = torch.float32,
                        tokenizer: bool = True,
                        state_dict: dict[str, torch.Tensor] | None = None) -> str:
    """Write a safetensors checkpoint folder at `path` and return its path.

    With no config, the weights are the embedded model's, dequantized from its GGUF file exactly
    as transformers dequantizes them; otherwise they are random (transformers' own
    initialization for `config`, seeded). Shards of at most `max_shard_size` get an index file.
    The embedded model's tokenizer files (with its chat template) go along unless `tokenizer`
    is False. A given `state_dict` is written instead of the random one.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if config is None:
        config = get_hf_config(embedded_model_path())
        state_dict = dict(iterate_weights(embedded_model_path(), "gguf", config))
    else:
        config = copy.deepcopy(config)  # the dtype set below is for the folder, not the caller
        state_dict = random_state_dict(config, seed) if state_dict is None else state_dict
    # Integer tensors (packed quantized weights) keep their type.
    state_dict = {name: (t.to(dtype) if t.is_floating_point() else t).contiguous()
                  for name, t in state_dict.items()}
    config.dtype = dtype
    config.save_pretrained(path)
    save_torch_state_dict(state_dict, path, max_shard_size=max_shard_size)
    if tokenizer:
        get_tokenizer(embedded_model_path()).save_pretrained(path)
    return str(path)


def embedded_hf_checkpoint() -> str:
    """The embedded model as a float32 safetensors folder, written once into the cache folder
    (keyed by the GGUF file) and reused by later tests and later runs."""
    gguf_path = embedded_model_path()
    st = os.stat(gguf_path)
    key = hashlib.sha256(f"{gguf_path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir("checkpoints") / f"smollm2-135m-{key}"
    if not (target / "config.json").is_file():
        tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared
        try:
            write_hf_checkpoint(tmp)
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not merely written meanwhile by another process
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def random_state_dict(config: PretrainedConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights for `config` with transformers' own initialization, HF names."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        state_dict = model.state_dict()
        for name, tensor in state_dict.items():  # transformers starts biases at zero and norms
            if name.endswith((".bias", "_norm.weight")):  # at one: one loaded wrongly must
                tensor.add_(torch.randn_like(tensor), alpha=0.1)  # change the tokens
    if config.tie_word_embeddings:  # a tied head is not stored, as in real checkpoints
        state_dict.pop("lm_head.weight", None)
    return state_dict


def write_sentence_transformers_pooling(path, **modes: bool) -> str:
    """Makes the checkpoint folder at `path` a sentence-transformers one: `modules.json` (the
    transformer, then Pooling and Normalize modules) and `1_Pooling/config.json` with the given
    modes (`pooling_mode_mean_tokens=True`, ...; the others false); returns the path."""
    path = Path(path)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize"}]
    (path / "modules.json").write_text(json.dumps(modules))
    config = {"include_prompt": True,
              **{f"pooling_mode_{m}": False for m in (
                  "cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                  "weightedmean_tokens", "lasttoken")},
              **modes}
    (path / "1_Pooling").mkdir(exist_ok=True)
    (path / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return str(path)


def linked_checkpoint_with(path, source: str, files: dict[str, dict]) -> str:
    """A folder at `path` linking every file of the checkpoint `source`, plus `files` (name:
    JSON content) of its own, such as a generation_config.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(source):
        if name not in files:
            os.symlink(os.path.join(source, name), path / name)
    for name, content in files.items():
        (path / name).write_text(json.dumps(content))
    return str(path)
