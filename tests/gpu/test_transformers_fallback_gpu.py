"""The transformers fallback on the GPU: transformers' own model on the paged cache, through
the decode CUDA graphs and the piecewise graphs of steps with prompts, token for token as
transformers generates in float32."""
import pytest
import torch

from utils.fallback_models import write_fallback_checkpoint
from utils.gpu_engine import float32_engine
from utils.oracle import hf_greedy

pytestmark = pytest.mark.gpu

# Token ids of 3 to 70 tokens: one step holds prompts of different lengths.
PROMPTS = [[5, 17, 300], list(range(100, 170)), [7] * 12 + [900, 901], list(range(2000, 2031))]


@pytest.mark.parametrize("model_type", ["gpt_neox", "olmo2", "granite"])
def test_token_identical_to_transformers_through_cuda_graphs(tmp_path, model_type):
    from transformers import AutoModelForCausalLM
    from inference_engine import SamplingParams
    # Heads of 64: a size the GPU attention kernels take.
    path = write_fallback_checkpoint(tmp_path / model_type, model_type, seed=2, tokenizer=False,
                                     hidden_size=256, intermediate_size=512)
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    with float32_engine(path, max_model_len=256) as llm:
        runner = llm.llm_engine.executor.driver.model_runner
        assert runner.graph_runner is not None and runner.piecewise_runner is not None
        outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to("cuda").eval()
    for prompt, out in zip(PROMPTS, outputs):
        assert list(out.outputs[0].token_ids) == hf_greedy(hf, prompt, 16, None)
