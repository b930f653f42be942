"""FP8 weights on a GPU (--quantization fp8; torch._scaled_mm with row-wise scales, inside the
CUDA graphs): a bf16 tiny Llama keeps its likeliest first tokens, up to near ties, and its
linear weights take half the memory."""
import gc

import pytest
import torch

from inference_engine import LLM, SamplingParams
from inference_engine.model_executor.layers.linear import LinearBase

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[5 + (7 * i + j) % 3000 for j in range(4 + 13 * i)] for i in range(16)]


def first_steps(path: str, quantization: str | None):
    llm = LLM(path, dtype="bfloat16", device="cuda", skip_tokenizer_init=True,
              num_gpu_blocks_override=512, quantization=quantization)
    try:
        model = llm.llm_engine.executor.driver.model_runner.model
        weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
                           if isinstance(m, LinearBase))
        params = SamplingParams(temperature=0, max_tokens=8, logprobs=5, ignore_eos=True)
        outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
        return [o.outputs[0].logprobs[0] for o in outputs], weight_bytes
    finally:
        llm.llm_engine.executor.shutdown()
        del llm
        gc.collect()
        torch.cuda.empty_cache()


def test_fp8_weights_keep_the_likeliest_tokens(tiny_gpu_checkpoint):
    (bf16, bf16_bytes) = first_steps(tiny_gpu_checkpoint, None)
    (fp8, fp8_bytes) = first_steps(tiny_gpu_checkpoint, "fp8")
    assert fp8_bytes * 2 == bf16_bytes
    for ours, theirs in zip(fp8, bf16):
        best = min(theirs, key=lambda t: theirs[t].rank)
        assert best in ours and ours[best].logprob == pytest.approx(theirs[best].logprob, abs=1.0)
