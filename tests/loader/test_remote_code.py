"""A checkpoint whose config class is its own code (`auto_map`) loads only with
trust_remote_code (the code fetched from the hub only then), and the refusal names the flag."""
import json
import os

import pytest
from huggingface_hub import constants

from inference_engine import LLM, SamplingParams
from inference_engine.transformers_utils.config import get_hf_config
from inference_engine.transformers_utils.hub import download_model
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint
from utils.hub_standin import StandInHub

CUSTOM_CONFIG = '''from transformers import LlamaConfig


class CustomLlamaConfig(LlamaConfig):
    model_type = "custom_llama"
'''


@pytest.fixture(scope="module")
def custom_checkpoint(tmp_path_factory) -> str:
    folder = write_hf_checkpoint(tmp_path_factory.mktemp("custom"), tiny_llama_config(), seed=2)
    with open(os.path.join(folder, "configuration_custom.py"), "w") as f:
        f.write(CUSTOM_CONFIG)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(model_type="custom_llama",
                  auto_map={"AutoConfig": "configuration_custom.CustomLlamaConfig"})
    with open(path, "w") as f:
        json.dump(config, f)
    return folder


def test_refused_without_the_flag_naming_it(custom_checkpoint):
    with pytest.raises(ValueError, match="--trust-remote-code"):
        get_hf_config(custom_checkpoint)
    with pytest.raises(ValueError, match="--trust-remote-code"):
        LLM(custom_checkpoint)


def test_runs_with_the_flag(custom_checkpoint):
    config = get_hf_config(custom_checkpoint, trust_remote_code=True)
    assert type(config).__name__ == "CustomLlamaConfig"
    llm = LLM(custom_checkpoint, trust_remote_code=True, dtype="float32",
              cpu_kv_cache_space_gib=0.05)
    try:
        out = llm.generate(["Hello"], SamplingParams(temperature=0, max_tokens=4))
        assert len(out[0].outputs[0].token_ids) == 4
    finally:
        llm.shutdown()


def test_the_code_is_fetched_from_the_hub_only_with_the_flag(custom_checkpoint, tmp_path,
                                                             monkeypatch):
    hub = StandInHub()
    hub.add_folder("org/custom", custom_checkpoint)
    monkeypatch.setenv("HF_ENDPOINT", hub.start().url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # (tests/conftest.py sets it)
    try:
        plain = download_model("org/custom", download_dir=str(tmp_path / "a"))
        assert "configuration_custom.py" not in os.listdir(plain)
        with_code = download_model("org/custom", download_dir=str(tmp_path / "b"), code=True)
        assert "configuration_custom.py" in os.listdir(with_code)
        assert type(get_hf_config(with_code, trust_remote_code=True)).__name__ == \
            "CustomLlamaConfig"
    finally:
        hub.stop()
