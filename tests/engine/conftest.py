"""The embedded model, loaded once per test session: our engine and the transformers oracle."""
import os

import pytest
import torch


@pytest.fixture(scope="session")
def embedded_path() -> str:
    from inference_engine.transformers_utils.embedded import embedded_model_path
    return embedded_model_path()


@pytest.fixture(scope="session")
def llm(embedded_path):
    from inference_engine import LLM
    return LLM(dtype="float32", max_model_len=2048, max_num_seqs=64, cpu_kv_cache_space_gib=1.0)


@pytest.fixture(scope="session")
def hf_model(embedded_path):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(embedded_path),
                                                 gguf_file=os.path.basename(embedded_path),
                                                 dtype=torch.float32)
    return model.eval()

