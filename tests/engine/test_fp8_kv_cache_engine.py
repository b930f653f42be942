"""`kv_cache_dtype="fp8"` end to end: the setting's checks, a cache of float8_e4m3fn holding twice
the blocks in the same memory, and generation that still works on it (on the CPU through the
ops' references; tests/gpu runs it on the GPU kernels)."""
import argparse

import pytest
import torch

from inference_engine import LLM, SamplingParams
from inference_engine.config import CacheConfig
from inference_engine.engine.arg_utils import EngineArgs
from test_batching import free_blocks


def test_cache_dtype_is_checked():
    with pytest.raises(ValueError, match="kv_cache_dtype must be auto, fp8 or fp8_e4m3"):
        CacheConfig(cache_dtype="int8")
    assert CacheConfig(cache_dtype="fp8").torch_dtype(torch.bfloat16) == torch.float8_e4m3fn
    assert CacheConfig().torch_dtype(torch.bfloat16) == torch.bfloat16


def test_cli_flag():
    parser = EngineArgs.add_cli_args(argparse.ArgumentParser())
    args = EngineArgs.from_cli_args(parser.parse_args(["--kv-cache-dtype", "fp8"]))
    assert args.kv_cache_dtype == "fp8"


@pytest.fixture(scope="module")
def fp8_llm(embedded_path):
    return LLM(dtype="float32", max_model_len=512, cpu_kv_cache_space_gib=0.25,
               kv_cache_dtype="fp8")


def test_fp8_cache_holds_four_times_the_blocks_of_float32(fp8_llm, llm):
    """Same model and budget per GiB: a float32 cache's blocks take four times the bytes."""
    runner = fp8_llm.llm_engine.executor.driver.model_runner
    assert runner.cache_engine.kv_cache.dtype == torch.float8_e4m3fn
    per_gib = fp8_llm.llm_engine.config.cache_config.num_blocks / 0.25
    assert per_gib == 4 * llm.llm_engine.config.cache_config.num_blocks / 1.0


def test_fp8_cache_generates(fp8_llm, llm):
    """Greedy decoding over the FP8 cache: every request gets its tokens, and a confident answer
    survives the cache's rounding (its first token matches the float32 cache's)."""
    params = SamplingParams(temperature=0, max_tokens=16)
    prompts = ["The capital of France is", "1, 2, 3, 4, 5,", "Write a haiku about the sea."]
    fp8_outputs = fp8_llm.generate(prompts, params, use_tqdm=False)
    exact_outputs = llm.generate(prompts, params, use_tqdm=False)
    assert all(len(o.outputs[0].token_ids) == 16 for o in fp8_outputs)
    for fp8_out, exact_out in zip(fp8_outputs[:2], exact_outputs[:2]):
        assert fp8_out.outputs[0].token_ids[:4] == exact_out.outputs[0].token_ids[:4]
    assert free_blocks(fp8_llm) == fp8_llm.llm_engine.config.cache_config.num_blocks
