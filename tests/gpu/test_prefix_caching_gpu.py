"""Prefix caching on a GPU (async scheduling, CUDA graphs, Triton prefill behind cached
prefixes): the tokens and log-probabilities of the same requests computed whole."""
import pytest
import torch

from inference_engine import SamplingParams
from utils.gpu_engine import float32_engine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

# Three shared prefixes (system prompts of 37, 80 and 150 tokens) under varied questions; some
# prompts repeat whole, some are the prefix plus one token.
PREFIXES = [[(13 * i + 7 * p) % 30000 + 5 for i in range(n)] for p, n in enumerate((37, 80, 150))]
PROMPTS = [PREFIXES[i % 3] + [(31 * i + j) % 30000 + 5 for j in range(i % 23)] + [i + 5]
           for i in range(36)] + [PREFIXES[1] + [9]] * 3
PARAMS = [SamplingParams(temperature=0, max_tokens=6 + 5 * i % 30, ignore_eos=True, logprobs=1)
          for i in range(len(PROMPTS))]


def generate(path: str, prefix_caching: bool, rounds: int = 2) -> tuple[list, int]:
    """Outputs of every round (the second finds the first's prefixes), and the cache hits."""
    with float32_engine(path, max_num_seqs=16, max_num_batched_tokens=512, max_model_len=512,
                        enable_prefix_caching=prefix_caching) as llm:
        outs = []
        for _ in range(rounds):
            outs += llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS, use_tqdm=False)
        blocks = llm.llm_engine.scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
        return [out.outputs[0] for out in outs], blocks.prefix_cache_hits


def test_cached_prefixes_give_the_tokens_computed_whole(tiny_gpu_checkpoint):
    cached, hits = generate(tiny_gpu_checkpoint, prefix_caching=True)
    whole, no_hits = generate(tiny_gpu_checkpoint, prefix_caching=False)
    assert hits > sum(len(p) for p in PROMPTS) // 2 and no_hits == 0
    for c, w in zip(cached, whole, strict=True):
        assert c.token_ids == w.token_ids
        assert c.cumulative_logprob == pytest.approx(w.cumulative_logprob, rel=1e-4, abs=1e-4)
