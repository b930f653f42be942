"""The embedded model, loaded once per test session: our engine and the transformers oracle;
the detokenizer tests' tokenizers."""
import os

import pytest
import torch

from utils.detokenizer_cases import SP_DECODERS, build_sp_tokenizer


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
    """transformers on the embedded weights, from the safetensors copy of the dequantized GGUF
    (tests/loader proves its tensors equal transformers' own GGUF dequantization; loading the
    GGUF through transformers takes ~45 s)."""
    from transformers import AutoModelForCausalLM

    from utils.hf_checkpoint import embedded_hf_checkpoint
    return AutoModelForCausalLM.from_pretrained(embedded_hf_checkpoint(), dtype=torch.float32).eval()


# The incremental detokenizer's tokenizers (test_detokenizer*.py): SmolLM2's byte-level BPE
# and small sentencepiece-style ones (utils/detokenizer_cases.py).
@pytest.fixture(scope="session")
def smollm2(embedded_path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(os.path.dirname(embedded_path),
                                         gguf_file=os.path.basename(embedded_path))


@pytest.fixture(scope="session", params=["smollm2", *SP_DECODERS])
def tok(request):
    if request.param == "smollm2":
        return request.getfixturevalue("smollm2")
    return build_sp_tokenizer(request.param)
