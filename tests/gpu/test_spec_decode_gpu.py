"""n-gram speculative decoding on a GPU (steps with drafts replay the piecewise CUDA graphs of
steps with prompts): greedy float32 tokens exactly as without drafts, and seeded sampling
repeatable, on a tiny random Llama whose prompts repeat themselves."""
import pytest
import torch

from inference_engine import SamplingParams
from utils.gpu_engine import float32_engine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[5 + (i + j % (3 + i % 4)) % 3000 for j in range(20 + 9 * i)] for i in range(16)]
SPEC = {"num_speculative_tokens": 4, "prompt_lookup_max": 3}


def completions(outputs):
    return [(list(c.token_ids), c.finish_reason) for o in outputs for c in o.outputs]


def test_greedy_tokens_as_without_drafts(tiny_gpu_checkpoint):
    params = SamplingParams(temperature=0, max_tokens=48, ignore_eos=True, logprobs=1)
    with float32_engine(tiny_gpu_checkpoint, max_num_seqs=32) as llm:
        expected = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
    with float32_engine(tiny_gpu_checkpoint, max_num_seqs=32, speculative_config=SPEC) as llm:
        outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
        engine = llm.llm_engine
        assert engine.num_draft_tokens_total > 0
        blocks = engine.scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
    assert completions(outputs) == completions(expected)
    for ours, theirs in zip(outputs, expected):
        for a, b in zip(ours.outputs[0].logprobs, theirs.outputs[0].logprobs):
            token = next(iter(a))
            assert a[token].logprob == pytest.approx(b[token].logprob, abs=1e-3)


def test_seeded_sampling_repeats(tiny_gpu_checkpoint):
    params = [SamplingParams(temperature=1.0, seed=i, max_tokens=32, ignore_eos=True)
              for i in range(len(PROMPTS))]
    with float32_engine(tiny_gpu_checkpoint, max_num_seqs=32, speculative_config=SPEC) as llm:
        first = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
        again = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
    assert completions(first) == completions(again)
