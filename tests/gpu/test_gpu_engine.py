"""The engine on a GPU, with the compiled ops, against transformers on the same GPU."""
import json
import os

import pytest
import torch

from inference_engine import LLM, SamplingParams
from utils.oracle import hf_greedy

pytestmark = pytest.mark.gpu

WORKLOAD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "workloads",
                        "sharegpt-1000.jsonl")
PROMPTS = ["The capital of France is", "def quicksort(arr):", "Les mathématiques sont",
           "日本の首都は", "Once upon a time,", "1, 2, 3, 4,", "Q: Why is the sky blue?\nA:",
           "The history of science is the study of how people came to understand nature. " * 40]


def workload_prompts(count: int) -> list[list[int]]:
    path = os.environ.get("SHAREGPT_WORKLOAD", WORKLOAD)
    with open(path) as f:
        return [json.loads(line)["prompt_token_ids"] for _, line in zip(range(count), f)]


def hf_model(dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    from utils.hf_checkpoint import embedded_hf_checkpoint
    return AutoModelForCausalLM.from_pretrained(embedded_hf_checkpoint(), dtype=dtype).cuda().eval()


def test_float32_token_identical_to_transformers():
    llm = LLM(dtype="float32", max_model_len=2048, gpu_memory_utilization=0.3)
    hf = hf_model(torch.float32)
    eos = llm.get_tokenizer().eos_token_id
    outs = llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=32), use_tqdm=False)
    for prompt, out in zip(PROMPTS, outs):
        ids = out.prompt_token_ids
        expected = hf_greedy(hf, ids, 32, eos)
        assert out.outputs[0].token_ids == expected, prompt[:30]


def test_bfloat16_agrees_on_95_percent_of_sharegpt_tokens():
    prompts = workload_prompts(50)
    llm = LLM(dtype="bfloat16", max_model_len=2048, gpu_memory_utilization=0.3)
    hf = hf_model(torch.bfloat16)
    params = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True)
    outs = llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    same = prefix = total = 0
    for ids, out in zip(prompts, outs):
        expected = hf_greedy(hf, ids, 32, None)
        got = out.outputs[0].token_ids
        same += sum(a == b for a, b in zip(got, expected))
        prefix += next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), len(got))
        total += len(expected)
    print(f"bf16 agreement: {same / total:.4f} position-wise, {prefix / total:.4f} common prefix")
    assert same / total >= 0.95
