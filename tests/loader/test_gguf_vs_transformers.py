"""The embedded GGUF model as we load it equals what transformers makes of the same file.

transformers dequantizes with gguf's numpy code and undoes llama.cpp's q/k permutation itself,
so bitwise-equal tensors prove both our dequantization and our un-permutation.
"""
import os

import pytest
import torch
from transformers import AutoModelForCausalLM
from utils.hf_checkpoint import embedded_hf_checkpoint

from inference_engine.model_executor.loader import iterate_weights
from inference_engine.transformers_utils.load_format import resolve_load_format
from inference_engine.transformers_utils.config import get_hf_config
from inference_engine.transformers_utils.embedded import embedded_model_path
from inference_engine.transformers_utils.tokenizer import get_tokenizer

TEXTS = ["Hello world!", "  leading spaces\n\nand newlines\t", "ünïcödé 你好 🎉", "x = [1, 22, 333]",
         "<|im_start|>user\nHi<|im_end|>"]


@pytest.fixture(scope="module")
def hf_model():
    path = embedded_model_path()
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), dtype=torch.float32,
                                                 gguf_file=os.path.basename(path))
    return model.eval()


def test_weights_equal_transformers_dequantized(hf_model):
    config = get_hf_config(None)
    assert resolve_load_format(None, "auto") == "gguf"
    ours = dict(iterate_weights(None, "auto", config))
    theirs = hf_model.state_dict()
    # The head is tied to the embedding, so the file (and we) have no lm_head.weight.
    assert set(ours) == set(theirs) - {"lm_head.weight"}
    for name, tensor in ours.items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, theirs[name]), name


def test_config_matches_transformers(hf_model):
    ours, theirs = get_hf_config(embedded_model_path()), hf_model.config
    assert ours.architectures == ["LlamaForCausalLM"]
    for field in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                  "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
                  "max_position_embeddings", "tie_word_embeddings", "bos_token_id", "eos_token_id",
                  "pad_token_id", "rope_parameters", "hidden_act", "attention_bias", "mlp_bias"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert (ours.num_hidden_layers, ours.hidden_size, ours.num_attention_heads,
            ours.num_key_value_heads, ours.head_dim, ours.vocab_size) == (30, 576, 9, 3, 64, 49152)
    assert ours.rope_parameters["rope_theta"] == 1e5


def test_embedded_hf_checkpoint_loads_the_same_model(hf_model):
    path = embedded_hf_checkpoint()
    assert embedded_hf_checkpoint() == path  # written once, then reused
    assert resolve_load_format(path, "auto") == "safetensors"
    folder_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    theirs = hf_model.state_dict()
    for name, tensor in folder_model.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    folder_tok, gguf_tok = get_tokenizer(path), get_tokenizer(None)
    assert [folder_tok.encode(t) for t in TEXTS] == [gguf_tok.encode(t) for t in TEXTS]
    assert folder_tok.chat_template == gguf_tok.chat_template


def test_gguf_tokenizer_is_cached_and_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_ENGINE_CACHE", str(tmp_path))
    converted = get_tokenizer(None)  # transformers' own conversion of the GGUF vocabulary
    entries = list((tmp_path / "tokenizers").iterdir())
    assert len(entries) == 1 and (entries[0] / "tokenizer.json").is_file()
    cached = get_tokenizer(None)
    assert [cached.encode(t) for t in TEXTS] == [converted.encode(t) for t in TEXTS]
    assert cached.eos_token == converted.eos_token == "<|im_end|>"
    assert cached.bos_token == converted.bos_token and len(cached) == len(converted) == 49152
    chat = [{"role": "user", "content": "Hi"}]
    prompt = cached.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert prompt == converted.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
