"""bfloat16 on the embedded model: where our greedy tokens and transformers' first differ, each
token is among the other's top 5 (see utils.near_ties): against transformers in bfloat16 (the
two part only where rounding decides between near-equal logits) and in float32 (our rounding
moves a token only where the accurate model is nearly undecided)."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from inference_engine import LLM, SamplingParams
from utils.near_ties import engine_generation, first_divergences, hf_greedy_top, summary

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a land far away,",
    "Les mathématiques sont",
    "Q: What is the boiling point of water?\nA:",
    "Write a haiku about the sea.",
    "The three laws of thermodynamics are",
    "import numpy as np\n\nx = np.",
]


@pytest.fixture(scope="module")
def ours_bf16(embedded_path):
    llm = LLM(dtype="bfloat16", cpu_kv_cache_space_gib=0.25)
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True, logprobs=5)
    outs = llm.generate(PROMPTS, params, use_tqdm=False)
    llm.shutdown()
    return outs


@pytest.mark.parametrize("hf_dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_bfloat16_parts_from_transformers_only_at_near_ties(ours_bf16, hf_dtype):
    from utils.hf_checkpoint import embedded_hf_checkpoint
    ours = [engine_generation(out.outputs[0]) for out in ours_bf16]
    hf = AutoModelForCausalLM.from_pretrained(embedded_hf_checkpoint(), dtype=hf_dtype).eval()
    theirs = [hf_greedy_top(hf, out.prompt_token_ids, 16, 5) for out in ours_bf16]
    divergences = first_divergences(ours, theirs)
    print(summary(divergences, len(PROMPTS)))
    assert all(d.is_near_tie for d in divergences), [d for d in divergences if not d.is_near_tie]
