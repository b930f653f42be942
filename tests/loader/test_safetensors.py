"""Hugging Face checkpoint folders: single file, sharded with an index, tied heads, dtypes."""
import json
import os

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from utils.hf_checkpoint import random_state_dict, tiny_llama_config, write_hf_checkpoint

from inference_engine.model_executor.loader import iterate_weights
from inference_engine.transformers_utils.load_format import resolve_load_format
from inference_engine.model_executor.loader.safetensors_loader import safetensors_files
from inference_engine.transformers_utils.config import get_hf_config
from inference_engine.transformers_utils.tokenizer import get_tokenizer


def test_sharded_checkpoint_matches_transformers(tmp_path):
    config = tiny_llama_config()
    path = write_hf_checkpoint(tmp_path, config, max_shard_size="1MB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert resolve_load_format(path, "auto") == "safetensors"
    hf_config = get_hf_config(path)
    assert hf_config.architectures == ["LlamaForCausalLM"] and hf_config.num_key_value_heads == 2
    ours = dict(iterate_weights(path, "auto", hf_config))
    theirs = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).state_dict()
    assert set(ours) == set(theirs) == set(random_state_dict(config))
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name
    assert get_tokenizer(path).eos_token == "<|im_end|>"


def test_same_seed_same_weights(tmp_path):
    a = dict(iterate_weights(write_hf_checkpoint(tmp_path / "a", tiny_llama_config()), "auto", None))
    b = dict(iterate_weights(write_hf_checkpoint(tmp_path / "b", tiny_llama_config()), "auto", None))
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_tied_head_is_not_stored_and_dtype_is_kept(tmp_path):
    config = tiny_llama_config(tie_word_embeddings=True)
    path = write_hf_checkpoint(tmp_path, config, dtype=torch.bfloat16, tokenizer=False)
    weights = dict(iterate_weights(path, "safetensors", get_hf_config(path)))
    assert "lm_head.weight" not in weights and "model.embed_tokens.weight" in weights
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    assert torch.equal(model.lm_head.weight, weights["model.embed_tokens.weight"])


def test_index_decides_which_files_are_read(tmp_path):
    path = write_hf_checkpoint(tmp_path, tiny_llama_config(), max_shard_size="1MB", tokenizer=False)
    # A stray consolidated copy (as Mistral repositories ship) must not be read as well.
    save_file({"bogus.weight": torch.zeros(2)}, os.path.join(path, "consolidated.safetensors"))
    assert not any("consolidated" in f for f in safetensors_files(path))
    assert "bogus.weight" not in dict(iterate_weights(path, "auto", None))


def test_folder_without_weights_or_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="safetensors"):
        resolve_load_format(str(tmp_path), "auto")
    with pytest.raises(FileNotFoundError, match="config.json"):
        get_hf_config(str(tmp_path))
