"""Embeddings on a GPU (piecewise CUDA graphs for the prompts' steps, async scheduling), float32:
the last hidden states of transformers on the same GPU, normalized, beside generations."""
import pytest
import torch

from inference_engine import PoolingParams, SamplingParams
from utils.gpu_engine import float32_engine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[(41 * i + 5 * j) % 30000 + 5 for j in range(3 + 37 * i % 120)] for i in range(10)]


def test_embeddings_are_transformers_last_hidden_states(tiny_gpu_checkpoint):
    from transformers import AutoModelForCausalLM
    params = [PoolingParams() if i % 2 else SamplingParams(temperature=0, max_tokens=8,
                                                           ignore_eos=True)
              for i in range(len(PROMPTS))]
    with float32_engine(tiny_gpu_checkpoint, max_model_len=256) as llm:
        outs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
        blocks = llm.llm_engine.scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
    hf = AutoModelForCausalLM.from_pretrained(tiny_gpu_checkpoint, dtype=torch.float32).cuda()
    for prompt, out in zip(PROMPTS[1::2], outs[1::2]):
        with torch.no_grad():
            hidden = hf.model(torch.tensor([prompt], device="cuda")).last_hidden_state[0, -1]
        torch.testing.assert_close(torch.tensor(out.embedding),
                                   torch.nn.functional.normalize(hidden, dim=0).cpu(),
                                   rtol=1e-3, atol=1e-4)
    assert all(len(out.outputs[0].token_ids) == 8 for out in outs[::2])
