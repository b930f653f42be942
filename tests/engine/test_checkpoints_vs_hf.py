"""Token identity with transformers for models loaded from safetensors folders."""
import pytest

from utils.hf_checkpoint import (embedded_hf_checkpoint, tiny_llama_config, tiny_mixtral_config,
                                 tiny_phi3_config, tiny_qwen2_config, tiny_qwen3_config,
                                 tiny_qwen3_moe_config, write_hf_checkpoint,
                                 write_moe_checkpoint)
from utils.oracle import assert_greedy_matches_transformers

PROMPTS = ["Hello, my name is", "The quick brown fox", "2 + 2 =", "Ünïcödé and 中文 text"]


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
    assert_greedy_matches_transformers(path, PROMPTS, block_size=8)


@pytest.mark.parametrize("overrides", [{}, {"tie_word_embeddings": False, "num_key_value_heads": 4}])
def test_tiny_random_qwen2(tmp_path, overrides):
    path = write_hf_checkpoint(tmp_path / "qwen2", tiny_qwen2_config(**overrides), seed=5)
    assert_greedy_matches_transformers(path, PROMPTS, block_size=8)


def test_tiny_random_qwen3(tmp_path):
    path = write_hf_checkpoint(tmp_path / "qwen3", tiny_qwen3_config(), seed=6)
    assert_greedy_matches_transformers(path, PROMPTS, block_size=8)


@pytest.mark.parametrize("overrides", [{}, {"num_key_value_heads": 4, "rope_theta": 250000.0}])
def test_tiny_random_phi3(tmp_path, overrides):
    path = write_hf_checkpoint(tmp_path / "phi3", tiny_phi3_config(**overrides), seed=7)
    assert_greedy_matches_transformers(path, PROMPTS, block_size=8)


@pytest.mark.parametrize("config", [
    tiny_mixtral_config(), tiny_qwen3_moe_config(), tiny_qwen3_moe_config(norm_topk_prob=False)])
def test_tiny_random_mixture_of_experts(tmp_path, config):
    path = write_moe_checkpoint(tmp_path / "moe", config, seed=8)
    assert_greedy_matches_transformers(path, PROMPTS, block_size=8)


def test_phi3_with_longrope_is_refused(tmp_path):
    from inference_engine import LLM
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0] * 8,
            "long_factor": [2.0] * 8, "original_max_position_embeddings": 256}
    path = write_hf_checkpoint(tmp_path / "phi3", tiny_phi3_config(rope_parameters=rope,
                                                                   max_position_embeddings=1024))
    with pytest.raises(ValueError, match="'longrope' rotary scaling is not supported"):
        LLM(path, dtype="float32", max_model_len=128, cpu_kv_cache_space_gib=0.1)


def test_embedded_model_from_safetensors_folder():
    assert_greedy_matches_transformers(embedded_hf_checkpoint(), PROMPTS, max_model_len=2048)


@pytest.mark.parametrize("make_config", [tiny_qwen2_config, tiny_qwen3_config])
def test_qwen_gguf_gives_the_tokens_of_its_safetensors_twin(tmp_path, make_config):
    """The config built from a Qwen GGUF file's metadata runs its weights as the folder does."""
    from inference_engine import LLM, SamplingParams
    from utils.gguf_file import write_llama_gguf
    from utils.hf_checkpoint import random_state_dict
    config = make_config()
    folder = write_hf_checkpoint(tmp_path / "folder", config, seed=8, tokenizer=False)
    gguf_path = write_llama_gguf(tmp_path / "m.gguf", config, random_state_dict(config, seed=8),
                                 arch=config.model_type, with_tokenizer=False)
    prompts = [[5, 17, 300, 4000, 12], [99] * 30]
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    runs = []
    for path in (folder, gguf_path):
        llm = LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=256,
                  cpu_kv_cache_space_gib=0.1)
        runs.append([o.outputs[0].token_ids for o in
                     llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)])
    assert runs[0] == runs[1]
