"""Sampling with drafts keeps the model's distribution, end to end: on a tiny random Llama with
an 8-token vocabulary, the second generated token's frequencies over thousands of requests
(whose drafts the engine checked) match the exact marginal computed from the model's own
probabilities, and keeping every draft (the mistake this guards against) would not."""
import numpy as np
import pytest
import torch

from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint

VOCAB = 8
PROMPT = [1, 2, 3, 1, 2, 3, 1, 2]  # "3 1 2" recurs: the proposer drafts after most tokens
REQUESTS = 4000


@pytest.fixture(scope="module")
def tiny_vocab_checkpoint(tmp_path_factory) -> str:
    config = tiny_llama_config(vocab_size=VOCAB, hidden_size=64, max_position_embeddings=64)
    return str(write_hf_checkpoint(tmp_path_factory.mktemp("v8"), config, tokenizer=False,
                                   seed=3))


def engine(path: str, **kwargs) -> LLM:
    return LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=64,
               max_num_seqs=256, cpu_kv_cache_space_gib=0.05, **kwargs)


def exact_second_token_marginal(llm: LLM) -> np.ndarray:
    """P(t2) = sum over t1 of P(t1) P(t2 | t1), from the model's full log-probabilities."""
    every = SamplingParams(temperature=0.0, max_tokens=1, logprobs=VOCAB, ignore_eos=True)

    def probs(prompt):
        out = llm.generate(prompt_token_ids=[prompt], sampling_params=every, use_tqdm=False)
        p = np.zeros(VOCAB)
        for token, lp in out[0].outputs[0].logprobs[0].items():
            p[token] = np.exp(lp.logprob)
        return p
    first = probs(PROMPT)
    return sum(first[t] * probs(PROMPT + [t]) for t in range(VOCAB))


def test_second_tokens_follow_the_models_distribution(tiny_vocab_checkpoint):
    plain = engine(tiny_vocab_checkpoint)
    try:
        exact = exact_second_token_marginal(plain)
    finally:
        plain.shutdown()
    torch.manual_seed(0)
    spec = engine(tiny_vocab_checkpoint, speculative_config={"num_speculative_tokens": 2})
    params = SamplingParams(temperature=1.0, max_tokens=3, ignore_eos=True)
    try:
        outputs = spec.generate(prompt_token_ids=[PROMPT] * REQUESTS, sampling_params=params,
                                use_tqdm=False)
        drafts = spec.llm_engine.num_draft_tokens_total
        accepted = spec.llm_engine.num_accepted_tokens_total
    finally:
        spec.shutdown()
    assert drafts > REQUESTS // 5 and 0 < accepted < drafts  # (after a first token 1, 2 or 3)
    first = np.array([o.outputs[0].token_ids[0] for o in outputs])
    second = np.array([o.outputs[0].token_ids[1] for o in outputs])
    found = np.bincount(second, minlength=VOCAB) / REQUESTS
    # Sampling noise of 4000 draws over 8 tokens: a total variation of ~0.02.
    assert 0.5 * np.abs(found - exact).sum() < 0.05, (found, exact)
    # Were every draft kept, the second token would follow the prompt's pattern after the first.
    pattern = {1: 2, 2: 3, 3: 1}
    follows = np.mean([pattern.get(int(a)) == int(b) for a, b in zip(first, second)])
    assert follows < 0.6
