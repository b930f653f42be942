"""A checkpoint's generation_config.json read as default sampling values, as vLLM reads it."""
import json

import pytest

from inference_engine.transformers_utils.generation_config import default_sampling_values


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({
        "do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 20,
        "repetition_penalty": 1.05, "max_new_tokens": 256, "bos_token_id": 1,
        "eos_token_id": [2, 3]}))
    return str(tmp_path)


def test_the_sampling_fields_of_the_models_file(folder):
    assert default_sampling_values(folder) == {"temperature": 0.6, "top_p": 0.9, "top_k": 20,
                                               "repetition_penalty": 1.05, "max_tokens": 256}


def test_vllm_ignores_the_file_and_overrides_win(folder, tmp_path_factory):
    assert default_sampling_values(folder, "vllm") == {}
    assert default_sampling_values(folder, "none", {"temperature": 0.0}) == {"temperature": 0.0}
    values = default_sampling_values(folder, "auto", '{"top_k": 1, "max_new_tokens": 8}')
    assert values["top_k"] == 1 and values["max_tokens"] == 8 and values["top_p"] == 0.9
    elsewhere = tmp_path_factory.mktemp("model")  # the model has none; another folder does
    assert default_sampling_values(str(elsewhere)) == {}
    assert default_sampling_values(str(elsewhere), folder)["temperature"] == 0.6


@pytest.mark.parametrize("source,overrides,message", [
    ("/no/such/folder", None, "no generation_config.json"),
    ("auto", '{"temperature": 0.5', "not JSON"),
    ("auto", {"beams": 4}, "unknown field"),
    ("auto", {"temperature": -1.0}, "temperature"),
])
def test_bad_sources_and_overrides_are_refused(folder, source, overrides, message):
    with pytest.raises(ValueError, match=message):
        default_sampling_values(folder, source, overrides)


def test_offline_generate_defaults_to_the_generation_config(tmp_path):
    from inference_engine import LLM
    from utils.hf_checkpoint import embedded_hf_checkpoint, linked_checkpoint_with
    folder = linked_checkpoint_with(tmp_path / "model", embedded_hf_checkpoint(), {
        "generation_config.json": {"temperature": 0.0, "max_new_tokens": 5}})
    llm = LLM(folder, dtype="float32", cpu_kv_cache_space_gib=0.1, max_model_len=512)
    defaults = llm.get_default_sampling_params()
    assert defaults.temperature == 0.0 and defaults.max_tokens == 5
    out = llm.generate(["The capital of France is"], use_tqdm=False)[0].outputs[0]
    assert len(out.token_ids) <= 5
    again = llm.generate(["The capital of France is"], use_tqdm=False)[0].outputs[0]
    assert again.token_ids == out.token_ids  # greedy
