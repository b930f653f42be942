"""Async scheduling on a GPU, with CUDA graphs and the compiled ops: each decode step takes its
input tokens from the previous step's sampled tokens on the device, launched before the host
has read them. The tokens must be exactly those of the synchronous engine."""
import gc

import pytest
import torch

from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

# Lengths that put the batches on several CUDA-graph sizes and mix prefills into decode steps.
PROMPTS = [[(31 * i + 7 * j) % 40000 + 3 for j in range(5 + 17 * i % 90)] for i in range(40)]


def generate(path: str, params: list[SamplingParams], async_scheduling: bool) -> list[list[int]]:
    llm = LLM(path, dtype="float32", device="cuda", skip_tokenizer_init=True,
              num_gpu_blocks_override=1024, max_num_seqs=32, async_scheduling=async_scheduling)
    try:
        outs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
        return [out.outputs[0].token_ids for out in outs]
    finally:
        llm.llm_engine.executor.shutdown()
        del llm
        gc.collect()
        torch.cuda.empty_cache()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    config = tiny_llama_config(hidden_size=256, intermediate_size=512, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=64, max_position_embeddings=1024)
    return str(write_hf_checkpoint(tmp_path_factory.mktemp("tiny"), config, tokenizer=False))


def test_greedy_and_seeded_tokens_equal_the_synchronous_engine(checkpoint):
    params = [SamplingParams(temperature=0, max_tokens=48, ignore_eos=True) if i % 2 else
              SamplingParams(temperature=1.0, top_p=0.9, seed=i, max_tokens=48, ignore_eos=True)
              for i in range(len(PROMPTS))]
    assert generate(checkpoint, params, True) == generate(checkpoint, params, False)


def test_stop_tokens_end_at_the_same_token(checkpoint):
    """A stop found one step late must not leak the extra token the next step computed."""
    greedy = SamplingParams(temperature=0, max_tokens=48, ignore_eos=True)
    full = generate(checkpoint, [greedy] * len(PROMPTS), False)
    params = [SamplingParams(temperature=0, max_tokens=48, ignore_eos=True,
                             stop_token_ids=[tokens[5 + i % 20]]) for i, tokens in enumerate(full)]
    ours = generate(checkpoint, params, True)
    assert ours == generate(checkpoint, params, False)
    for tokens, p in zip(ours, params):
        assert tokens[-1] == p.stop_token_ids[0] and len(tokens) <= 26
