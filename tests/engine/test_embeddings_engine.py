"""Embeddings (LLM.embed, PoolingParams) on the embedded model in float32: each prompt's last
token's final hidden state, normalized, as transformers computes it; beside generations in the
same steps, chunked, and with dimensions cut and normalization off."""
import math

import pytest
import torch

from inference_engine import LLM, PoolingParams, SamplingParams
from utils.hf_checkpoint import embedded_hf_checkpoint

TEXTS = ["Hello world", "The capital of France is Paris.", "a " * 90 + "long one", "x"]


@pytest.fixture(scope="module")
def hf_hidden():
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(embedded_hf_checkpoint(), dtype=torch.float32)

    def last_hidden(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model.model(torch.tensor([ids])).last_hidden_state[0, -1]
    return last_hidden


def test_embeddings_are_transformers_last_hidden_states(llm, hf_hidden):
    outputs = llm.embed(TEXTS, use_tqdm=False)
    for out in outputs:
        expected = torch.nn.functional.normalize(hf_hidden(out.prompt_token_ids), dim=0)
        torch.testing.assert_close(torch.tensor(out.outputs.embedding), expected,
                                   rtol=1e-4, atol=1e-5)
    assert not llm.llm_engine.has_unfinished_requests()


def test_beside_generations_with_dimensions_and_raw(llm, hf_hidden):
    greedy = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
    alone = llm.generate(TEXTS[1], greedy, use_tqdm=False)[0].outputs[0].token_ids
    outs = llm.generate([TEXTS[0], TEXTS[1], TEXTS[2]],
                        [PoolingParams(dimensions=16), greedy, PoolingParams(normalize=False)],
                        use_tqdm=False)
    assert outs[1].outputs[0].token_ids == alone and outs[1].embedding is None
    cut = torch.tensor(outs[0].embedding)
    assert cut.shape == (16,) and math.isclose(cut.norm().item(), 1.0, rel_tol=1e-5)
    expected = torch.nn.functional.normalize(hf_hidden(outs[0].prompt_token_ids)[:16], dim=0)
    torch.testing.assert_close(cut, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.tensor(outs[2].embedding),
                               hf_hidden(outs[2].prompt_token_ids), rtol=1e-4, atol=1e-4)
    assert outs[0].outputs == [] and outs[0].finished


def test_chunked_prompts_and_async_scheduling_give_the_same_embeddings(llm):
    expected = [o.outputs.embedding for o in llm.embed(TEXTS, use_tqdm=False)]
    other = LLM(dtype="float32", max_model_len=512, max_num_seqs=4, max_num_batched_tokens=32,
                enable_chunked_prefill=True, async_scheduling=True, cpu_kv_cache_space_gib=0.25)
    try:
        got = [o.outputs.embedding for o in other.embed(TEXTS, use_tqdm=False)]
    finally:
        other.shutdown()
    for g, e in zip(got, expected):
        torch.testing.assert_close(torch.tensor(g), torch.tensor(e), rtol=1e-4, atol=1e-5)


def test_dimensions_must_be_positive():
    from inference_engine.errors import SamplingParamsError
    with pytest.raises(SamplingParamsError, match="dimensions must be at least 1"):
        PoolingParams(dimensions=0)
