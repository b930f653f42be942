"""MEAN and CLS embeddings on a GPU (piecewise CUDA graphs for the prompts' steps, async
scheduling), float32, whole and in chunks over several steps: transformers' mean and first row of
the last hidden states on the same GPU, normalized, beside generations."""
import pytest
import torch

from inference_engine import PoolingParams, SamplingParams
from utils.gpu_engine import float32_engine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[(41 * i + 5 * j) % 30000 + 5 for j in range(3 + 37 * i % 120)] for i in range(10)]
REFERENCE = {"MEAN": lambda states: states.mean(0), "CLS": lambda states: states[0]}


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("pooling_type", ["MEAN", "CLS"])
def test_embeddings_pool_as_transformers(tiny_gpu_checkpoint, pooling_type, chunked):
    from transformers import AutoModelForCausalLM
    params = [PoolingParams() if i % 2 else SamplingParams(temperature=0, max_tokens=8,
                                                           ignore_eos=True)
              for i in range(len(PROMPTS))]
    # 32 tokens a step: every embedded prompt but the first spans several steps.
    chunking = dict(enable_chunked_prefill=True, max_num_batched_tokens=32, max_num_seqs=8)
    with float32_engine(tiny_gpu_checkpoint, max_model_len=256, pooling_type=pooling_type,
                        enable_prefix_caching=True, **(chunking if chunked else {})) as llm:
        assert llm.llm_engine.config.async_scheduling
        outs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
    hf = AutoModelForCausalLM.from_pretrained(tiny_gpu_checkpoint, dtype=torch.float32).cuda()
    for prompt, out in zip(PROMPTS[1::2], outs[1::2]):
        with torch.no_grad():
            states = hf.model(torch.tensor([prompt], device="cuda")).last_hidden_state[0]
        expected = torch.nn.functional.normalize(REFERENCE[pooling_type](states), dim=0)
        torch.testing.assert_close(torch.tensor(out.embedding), expected.cpu(),
                                   rtol=1e-3, atol=1e-4)
    assert all(len(out.outputs[0].token_ids) == 8 for out in outs[::2])
