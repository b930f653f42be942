"""Hugging Face configs for every kind of model source: checkpoint folder, GGUF file or preset.

A GGUF file's config is built from its metadata here rather than through
`AutoConfig.from_pretrained(..., gguf_file=...)`, which parses the whole file with gguf's slow
reader (about 12 s for the embedded model; this takes a fraction of a second). The fields match
what transformers derives from the same file.
"""
import contextlib
import os

from transformers import AutoConfig, LlamaConfig, PretrainedConfig, Qwen2Config, Qwen3Config

from inference_engine.transformers_utils.embedded import model_or_default
from inference_engine.transformers_utils.gguf_reader import GGUFFile

# Published shapes of the base models, for benchmarks with dummy weights. `model_type` picks the
# config class (transformers' name for the family); the other fields are that class's.
PRESETS: dict[str, dict] = {
    "llama3-8b": dict(
        model_type="llama",
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        bos_token_id=128000, eos_token_id=128001, tie_word_embeddings=False, dtype="bfloat16"),
    "llama2-7b": dict(
        model_type="llama",
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, dtype="float16"),
    "llama2-70b": dict(
        model_type="llama",
        vocab_size=32000, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
        num_attention_heads=64, num_key_value_heads=8, max_position_embeddings=4096,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, dtype="float16"),
    # A mixture of experts: 30B parameters, 128 experts of which 8 run a token (3B active).
    "qwen3-30b-a3b": dict(
        model_type="qwen3_moe",
        vocab_size=151936, hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
        num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
        num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, decoder_sparse_step=1,
        mlp_only_layers=[], max_position_embeddings=40960, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        bos_token_id=151643, eos_token_id=151645, tie_word_embeddings=False, dtype="bfloat16"),
    "bloom-176b": dict(
        model_type="bloom", vocab_size=250880, hidden_size=14336, n_layer=70, n_head=112,
        layer_norm_epsilon=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=3,
        tie_word_embeddings=True, dtype="bfloat16"),
}

# Llama-3-8B as quantized checkpoints (dummy weights, the formats' tensors and shapes): W4A16
# (GPTQ, groups of 128), W8A8-FP8 (AutoFP8, dynamic activation scales), W8A8-INT8
# (compressed-tensors, weights per channel, activations per token).
_INT8_ARGS = dict(num_bits=8, type="int", symmetric=True)
for _name, _quantization in {
        "gptq": dict(quant_method="gptq", bits=4, group_size=128, desc_act=False, sym=True),
        "fp8": dict(quant_method="fp8", activation_scheme="dynamic"),
        "int8": dict(quant_method="compressed-tensors", format="int-quantized", ignore=["lm_head"],
                     config_groups={"group_0": dict(
                         targets=["Linear"], weights=dict(_INT8_ARGS, strategy="channel"),
                         input_activations=dict(_INT8_ARGS, strategy="token", dynamic=True))}),
}.items():
    PRESETS[f"llama3-8b-{_name}"] = dict(PRESETS["llama3-8b"], quantization_config=_quantization)

# GGUF `general.architecture` -> (config class, HF architecture name).
GGUF_ARCHITECTURES = {"llama": (LlamaConfig, "LlamaForCausalLM"),
                      "qwen2": (Qwen2Config, "Qwen2ForCausalLM"),
                      "qwen3": (Qwen3Config, "Qwen3ForCausalLM")}


def is_gguf(model: str) -> bool:
    return model.endswith(".gguf")


def get_hf_config(model: str | None, trust_remote_code: bool = False) -> PretrainedConfig:
    """The config of a checkpoint folder, a `.gguf` file or a preset (None: the embedded model);
    a config whose class is code in the folder loads only with `trust_remote_code`."""
    model = model_or_default(model)
    if model in PRESETS:
        return preset_config(model)
    check_model_path(model)
    if is_gguf(model):
        return gguf_config(GGUFFile(model))
    if not os.path.isfile(os.path.join(model, "config.json")):
        raise FileNotFoundError(f"{model} has no config.json: not a Hugging Face checkpoint folder")
    with needs_trust_remote_code(model):
        config = AutoConfig.from_pretrained(model, local_files_only=True,
                                            trust_remote_code=trust_remote_code)
    if not config.architectures:
        config.architectures = [_causal_lm_class(config.model_type, model)]
    return config


@contextlib.contextmanager
def needs_trust_remote_code(model: str):
    """transformers' refusal to run a checkpoint's own code, as the flag that allows it."""
    try:
        yield
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise ValueError(f"{model} loads code of its own (its config's or tokenizer's "
                         "`auto_map`); pass --trust-remote-code (LLM(trust_remote_code=True)) "
                         "if you trust it") from None


def preset_config(name: str) -> PretrainedConfig:
    """The config (of the preset's own family) with the published shapes of a preset model;
    no weights exist for it."""
    fields = dict(PRESETS[name])
    model_type = fields.pop("model_type")
    return AutoConfig.for_model(model_type, architectures=[_causal_lm_class(model_type, name)],
                                **fields)


def check_model_path(model: str) -> None:
    """Raise a FileNotFoundError that says what was expected when `model` does not exist."""
    if os.path.exists(model):
        if not (os.path.isdir(model) or is_gguf(model)):
            raise ValueError(f"{model} is neither a checkpoint folder nor a .gguf file")
        return
    raise FileNotFoundError(
        f"model {model!r} not found: expected a Hugging Face checkpoint folder, a .gguf file or "
        f"one of the presets {sorted(PRESETS)} (a hub id is downloaded by EngineArgs and LLM)")


def gguf_config(gguf: GGUFFile) -> PretrainedConfig:
    """Build the HF config of a GGUF file from its metadata and tensor directory."""
    arch = gguf.architecture
    if arch not in GGUF_ARCHITECTURES:
        raise ValueError(f"{gguf.path}: GGUF architecture {arch!r} is not supported "
                         f"(supported: {sorted(GGUF_ARCHITECTURES)})")
    meta = gguf.metadata

    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    if get("expert_count", 0):
        raise ValueError(f"{gguf.path}: mixture-of-experts GGUF models are not supported")
    hidden, heads = get("embedding_length"), get("attention.head_count")
    kv_heads = get("attention.head_count_kv", heads)
    head_dim = get("attention.key_length") or get("rope.dimension_count") or hidden // heads
    # The embedding tensor is the surest source of the vocabulary size; metadata may lack it.
    embedding = gguf.tensors.get("token_embd.weight")
    vocab = embedding.shape[0] if embedding is not None else get("vocab_size")
    tokens = {f"{name}_token_id": meta.get(f"tokenizer.ggml.{key}")
              for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                                ("pad", "padding_token_id"), ("unk", "unknown_token_id"))}
    config_class, architecture = GGUF_ARCHITECTURES[arch]
    return config_class(
        architectures=[architecture],
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=get("feed_forward_length"),
        num_hidden_layers=get("block_count"),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=get("context_length", 2048),
        rms_norm_eps=get("attention.layer_norm_rms_epsilon", 1e-5),
        rope_parameters=_gguf_rope(gguf, get),
        # llama.cpp's converter omits `output.weight` when the head shares the embedding.
        tie_word_embeddings="output.weight" not in gguf.tensors,
        # Biases on q, k, v and o for Llama and Qwen3; Qwen2 has q, k, v biases by its type.
        **({"attention_bias": "blk.0.attn_q.bias" in gguf.tensors} if arch != "qwen2" else {}),
        **{k: v for k, v in tokens.items() if v is not None},
    )


def _gguf_rope(gguf: GGUFFile, get) -> dict:
    rope = {"rope_type": "default", "rope_theta": float(get("rope.freq_base", 10000.0))}
    scaling = get("rope.scaling.type", "none")
    if scaling == "linear":
        rope.update(rope_type="linear", factor=float(get("rope.scaling.factor")))
    elif scaling != "none":
        raise ValueError(f"{gguf.path}: GGUF rope scaling {scaling!r} is not supported")
    return rope


def _causal_lm_class(model_type: str, model: str) -> str:
    """The HF causal-LM class for a config.json that does not name its architecture."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"{model}/config.json names no architecture and model_type "
                         f"{model_type!r} is not a causal language model")
    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type]
