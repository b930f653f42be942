"""The transformers fallback: architectures with no native class run transformers' own model on
the paged KV cache, token for token as transformers generates, through batching, preemption,
prefix caching and the server's streams."""
import json

import httpx
import pytest

from inference_engine import LLM, SamplingParams
from inference_engine.engine.arg_utils import EngineArgs
from utils.fallback_models import FALLBACK_ARCHITECTURES, write_fallback_checkpoint
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint
from utils.oracle import assert_greedy_matches_transformers, hf_greedy
from utils.server import SERVER_ARGS, ServerProcess

# Lengths from 4 to ~40 tokens, so that one step holds prompts of different lengths.
PROMPTS = ["Hello, my name is", "The quick brown fox jumps over the lazy dog " * 3,
           "2 + 2 =", "Ünïcödé and 中文 text, then a longer tail of plain words to read"]


def impl_of(path: str, **kwargs) -> str:
    """What runs the checkpoint at `path`, as the engine decides before it starts."""
    args = EngineArgs(model=path, dtype="float32", **kwargs)
    return args.create_engine_config().model_config.model_impl


@pytest.fixture(scope="module")
def neox(tmp_path_factory) -> str:
    return write_fallback_checkpoint(tmp_path_factory.mktemp("neox"), "gpt_neox", seed=1)


@pytest.mark.parametrize("model_type", sorted(FALLBACK_ARCHITECTURES))
def test_token_identical_to_transformers(tmp_path, model_type):
    path = write_fallback_checkpoint(tmp_path / model_type, model_type, seed=3)
    assert impl_of(path) == "transformers"  # auto: no native class
    assert_greedy_matches_transformers(path, PROMPTS, max_tokens=16, ignore_eos=True,
                                       block_size=8)


def test_preemption_and_prefix_caching(neox):
    """Prompts sharing a long prefix, in a cache too small for all of them at once: requests
    are preempted and recomputed, later prompts find the prefix's blocks, and every sequence's
    tokens are still transformers'."""
    from transformers import AutoModelForCausalLM
    shared = list(range(1000, 1040))
    prompts = [shared + [2000 + i] * (1 + i % 5) for i in range(8)]
    llm = LLM(neox, dtype="float32", max_model_len=128, block_size=8,
              num_gpu_blocks_override=20, enable_prefix_caching=True)
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    outputs = llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    scheduler = llm.llm_engine.scheduler
    assert scheduler.num_preemptions_total > 0
    assert scheduler.block_manager.prefix_cache_hits > 0
    assert scheduler.block_manager.get_num_free_blocks() == 20
    hf = AutoModelForCausalLM.from_pretrained(neox, dtype="float32").eval()
    for prompt, out in zip(prompts, outputs):
        assert list(out.outputs[0].token_ids) == hf_greedy(hf, prompt, 24, None)


def test_a_native_architecture_through_transformers_gives_the_native_tokens(tmp_path):
    path = write_hf_checkpoint(tmp_path / "llama", tiny_llama_config(), seed=5)
    assert impl_of(path) == "native"
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    runs = {}
    for impl in ("native", "transformers"):
        llm = LLM(path, dtype="float32", max_model_len=256, cpu_kv_cache_space_gib=0.1,
                  model_impl=impl)
        runs[impl] = [o.outputs[0].token_ids for o in llm.generate(PROMPTS, params,
                                                                   use_tqdm=False)]
        assert llm.llm_engine.config.model_config.model_impl == impl
    assert runs["native"] == runs["transformers"]


def test_what_the_fallback_cannot_run_is_refused_at_start(tmp_path, neox):
    with pytest.raises(ValueError, match="no native class for architecture"):
        impl_of(neox, model_impl="native")
    with pytest.raises(ValueError, match="model_impl 'vllm' is not supported"):
        impl_of(neox, model_impl="vllm")
    falcon = write_hf_checkpoint(tmp_path / "falcon", _falcon_config(), tokenizer=False)
    with pytest.raises(ValueError, match="FalconForCausalLM does not route its attention"):
        impl_of(falcon)
    for extra, what in (({"tensor_parallel_size": 2}, "tensor_parallel_size"),
                        ({"enable_lora": True}, "LoRA"),
                        ({"quantization": "fp8"}, r"quantization \(fp8\)")):
        with pytest.raises(ValueError, match=f"{what}.* not supported with the transformers"):
            EngineArgs(model=neox, dtype="float32", **extra).create_engine_config()


def test_a_soft_capped_attention_is_refused(tmp_path):
    from transformers import Gemma2Config
    config = Gemma2Config(vocab_size=49152, hidden_size=64, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=16, num_hidden_layers=2,
                          intermediate_size=128, max_position_embeddings=512,
                          sliding_window=512, architectures=["Gemma2ForCausalLM"])
    path = write_hf_checkpoint(tmp_path / "gemma2", config, tokenizer=False)
    with pytest.raises(ValueError, match="soft-caps its attention scores"):
        LLM(path, dtype="float32", skip_tokenizer_init=True, cpu_kv_cache_space_gib=0.1)


def _falcon_config():
    from transformers import FalconConfig
    return FalconConfig(vocab_size=49152, hidden_size=64, num_attention_heads=4,
                        num_hidden_layers=2, architectures=["FalconForCausalLM"])


def test_served_and_streamed(neox, tmp_path):
    """`serve` on a folder of an architecture with no native class: completions streamed as
    they come, the same text as the offline engine's."""
    offline = LLM(neox, dtype="float32", max_model_len=512, cpu_kv_cache_space_gib=0.1)
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    expected = offline.generate([PROMPTS[1]], params, use_tqdm=False)[0].outputs[0].text
    server = ServerProcess([neox, *SERVER_ARGS], str(tmp_path / "log"))
    try:
        server.wait_ready()
        pieces = []
        with httpx.stream("POST", server.url + "/v1/completions", timeout=60, json={
                "model": neox, "prompt": PROMPTS[1], "max_tokens": 10, "temperature": 0,
                "ignore_eos": True, "stream": True}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    pieces.append(json.loads(line[6:])["choices"][0]["text"])
    finally:
        server.stop()
    assert len(pieces) > 1 and "".join(pieces) == expected
