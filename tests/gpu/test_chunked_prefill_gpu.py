"""Chunked prefill on a GPU (async scheduling, CUDA graphs for the decodes, piecewise graphs and
the Triton prefill kernel for the chunks): the tokens and log-probabilities of the same prompts
computed whole, with and without prefix caching."""
import pytest
import torch

from inference_engine import SamplingParams
from utils.gpu_engine import float32_engine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[(17 * i + 5 * j) % 30000 + 5 for j in range(3 + 61 * i % 400)] for i in range(24)]
PARAMS = [SamplingParams(temperature=0, max_tokens=5 + 7 * i % 30, ignore_eos=True, logprobs=1)
          for i in range(len(PROMPTS))]


def generate(path: str, **kwargs) -> list:
    with float32_engine(path, max_num_seqs=16, max_model_len=512, **kwargs) as llm:
        outs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS, use_tqdm=False)
        blocks = llm.llm_engine.scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
        return [out.outputs[0] for out in outs]


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_chunks_give_the_tokens_computed_whole(tiny_gpu_checkpoint, prefix_caching):
    chunked = generate(tiny_gpu_checkpoint, enable_chunked_prefill=True,
                       max_num_batched_tokens=64, enable_prefix_caching=prefix_caching)
    whole = generate(tiny_gpu_checkpoint, max_num_batched_tokens=512)
    for c, w in zip(chunked, whole, strict=True):
        assert c.token_ids == w.token_ids
        assert c.cumulative_logprob == pytest.approx(w.cumulative_logprob, rel=1e-4, abs=1e-4)
