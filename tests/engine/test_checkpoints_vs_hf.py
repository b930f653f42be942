"""Token identity with transformers for models loaded from safetensors folders."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import embedded_hf_checkpoint, tiny_llama_config, write_hf_checkpoint
from utils.oracle import hf_greedy

PROMPTS = ["Hello, my name is", "The quick brown fox", "2 + 2 =", "Ünïcödé and 中文 text"]


def assert_matches_transformers(path: str, max_tokens: int = 16, **llm_kwargs) -> None:
    llm = LLM(path, dtype="float32", cpu_kv_cache_space_gib=0.25, **llm_kwargs)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    params = SamplingParams(temperature=0, max_tokens=max_tokens)
    for out in llm.generate(PROMPTS, params, use_tqdm=False):
        expected = hf_greedy(hf, out.prompt_token_ids, max_tokens, llm.get_tokenizer().eos_token_id)
        assert out.outputs[0].token_ids == expected


@pytest.mark.parametrize("overrides,shard", [
    ({}, "5GB"),
    ({"tie_word_embeddings": True, "num_key_value_heads": 1}, "2MB"),
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64}}, "5GB"),
])
def test_tiny_random_llama(tmp_path, overrides, shard):
    path = write_hf_checkpoint(tmp_path / "tiny", tiny_llama_config(**overrides), seed=3,
                               max_shard_size=shard)
    assert_matches_transformers(path, block_size=8)


def test_embedded_model_from_safetensors_folder():
    assert_matches_transformers(embedded_hf_checkpoint(), max_model_len=2048)
