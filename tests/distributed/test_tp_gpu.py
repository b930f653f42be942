"""Tensor parallelism over two GPUs (NCCL, or RCCL on ROCm): TP=2 through `mp`, with and
without async scheduling, generates the tokens of TP=1 in float32 on tiny random Llamas, one
with its single KV head replicated."""
import pytest
import torch

from conftest import ENGINE_KWARGS
from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")]

PROMPTS = [{"prompt_token_ids": [(13 * i + 7 * j) % 40000 + 3 for j in range(n)]}
           for i, n in enumerate([3, 16, 31, 70])]
GREEDY = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_tp2_on_two_gpus_matches_tp1(tmp_path, kv_heads):
    config = tiny_llama_config(num_key_value_heads=kv_heads, tie_word_embeddings=kv_heads == 1)
    path = write_hf_checkpoint(tmp_path, config, seed=kv_heads, tokenizer=False)
    # A fixed cache: both engines share GPU 0 here, so profiling would find it full.
    kwargs = {**ENGINE_KWARGS, "device": "cuda", "skip_tokenizer_init": True, "enforce_eager": True,
              "num_gpu_blocks_override": 256}
    outputs = {}
    # (2, True): async scheduling, the driver broadcasting sampled tokens over NCCL.
    for tp, async_scheduling in ((1, False), (2, False), (2, True)):
        llm = LLM(path, tensor_parallel_size=tp, distributed_executor_backend="mp",
                  async_scheduling=async_scheduling, **kwargs)
        try:
            outputs[tp, async_scheduling] = [
                o.outputs[0].token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)]
        finally:
            llm.llm_engine.executor.shutdown()
    assert outputs[2, False] == outputs[1, False]
    assert outputs[2, True] == outputs[1, False]
