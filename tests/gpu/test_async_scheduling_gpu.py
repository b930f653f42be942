"""Async scheduling on a GPU, with CUDA graphs and the compiled ops: each decode step takes its
input tokens from the previous step's sampled tokens on the device, launched before the host
has read them. The tokens must be exactly those of the synchronous engine."""
import pytest
import torch

from inference_engine import SamplingParams
from utils.gpu_engine import float32_engine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

# Lengths that put the batches on several CUDA-graph sizes and mix prefills into decode steps.
PROMPTS = [[(31 * i + 7 * j) % 40000 + 3 for j in range(5 + 17 * i % 90)] for i in range(40)]


def generate(path: str, params: list[SamplingParams], async_scheduling: bool) -> list[list[int]]:
    with float32_engine(path, max_num_seqs=32, async_scheduling=async_scheduling) as llm:
        outs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
        return [out.outputs[0].token_ids for out in outs]


def test_greedy_and_seeded_tokens_equal_the_synchronous_engine(tiny_gpu_checkpoint):
    params = [SamplingParams(temperature=0, max_tokens=48, ignore_eos=True) if i % 2 else
              SamplingParams(temperature=1.0, top_p=0.9, seed=i, max_tokens=48, ignore_eos=True)
              for i in range(len(PROMPTS))]
    ours = generate(tiny_gpu_checkpoint, params, True)
    assert ours == generate(tiny_gpu_checkpoint, params, False)


def test_stop_tokens_end_at_the_same_token(tiny_gpu_checkpoint):
    """A stop found one step late must not leak the extra token the next step computed."""
    greedy = SamplingParams(temperature=0, max_tokens=48, ignore_eos=True)
    full = generate(tiny_gpu_checkpoint, [greedy] * len(PROMPTS), False)
    params = [SamplingParams(temperature=0, max_tokens=48, ignore_eos=True,
                             stop_token_ids=[tokens[5 + i % 20]]) for i, tokens in enumerate(full)]
    ours = generate(tiny_gpu_checkpoint, params, True)
    assert ours == generate(tiny_gpu_checkpoint, params, False)
    for tokens, p in zip(ours, params):
        assert tokens[-1] == p.stop_token_ids[0] and len(tokens) <= 26
