"""Embedding pooling types on a tiny random Llama in float32: LAST, MEAN and CLS give
transformers' last_hidden_state's last row, mean and first row, with prompts computed whole, in
chunks over several steps (async scheduling too), and with prefix caching on (MEAN and CLS then
read no cached prefix: its tokens' hidden states are never computed); generations beside them
are unchanged. A prompt recomputed after preemption pools anew."""
import pytest
import torch

from inference_engine import LLM, PoolingParams, SamplingParams
from inference_engine.model_executor.layers.pooler import pool, pooling_chunk
from inference_engine.pooling_params import PoolingType
from inference_engine.sequence import Sequence, SequenceGroup
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint

# 5 to 50 tokens, each first token its own; the last three share a 33-token prefix (two full
# blocks of 16), so a prefix cache finds it.
PREFIX = [(11 * j) % 40000 + 7 for j in range(33)]
PROMPTS = ([[(7 * i + 3 * j) % 40000 + 5 + i for j in range(5 + 9 * i)] for i in range(4)]
           + [PREFIX + [100 + i] * (1 + 4 * i) for i in range(3)])
GENERATION = [5, 17, 29, 41, 53, 65, 77, 89, 101, 113, 125, 137, 149, 161, 173, 185, 197, 209]
GREEDY = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)
REFERENCE = {"LAST": lambda states: states[-1], "MEAN": lambda states: states.mean(0),
             "CLS": lambda states: states[0]}
# A budget of 16 tokens a step: every prompt past 16 tokens spans several steps.
CHUNKED = dict(enable_chunked_prefill=True, max_num_batched_tokens=16, max_num_seqs=4)
ENGINES = {"whole": {}, "chunked_async": dict(CHUNKED, async_scheduling=True),
           "prefix_cached_chunked": dict(CHUNKED, enable_prefix_caching=True)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return write_hf_checkpoint(tmp_path_factory.mktemp("tiny"), tiny_llama_config(), seed=3)


@pytest.fixture(scope="module")
def hf_states(checkpoint):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).model

    def states(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(torch.tensor([ids])).last_hidden_state[0]
    return states


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("pooling_type", ["LAST", "MEAN", "CLS"])
def test_embeddings_pool_as_transformers(checkpoint, hf_states, pooling_type, engine):
    llm = LLM(checkpoint, dtype="float32", max_model_len=256, cpu_kv_cache_space_gib=0.1,
              pooling_type=pooling_type, **ENGINES[engine])
    try:
        assert llm.llm_engine.config.model_config.pooling_type is PoolingType(pooling_type)
        blocks = llm.llm_engine.scheduler.block_manager
        alone = llm.generate(prompt_token_ids=[GENERATION], sampling_params=GREEDY,
                             use_tqdm=False)[0].outputs[0].token_ids
        raw = llm.generate(prompt_token_ids=PROMPTS + [GENERATION], use_tqdm=False,
                           sampling_params=[PoolingParams(normalize=False)] * len(PROMPTS)
                           + [GREEDY])
        again = llm.embed(prompt_token_ids=PROMPTS, use_tqdm=False)  # prefixes cached now
    finally:
        llm.shutdown()
    assert raw[-1].outputs[0].token_ids == alone
    for prompt, first, second in zip(PROMPTS, raw, again):
        expected = REFERENCE[pooling_type](hf_states(prompt))
        torch.testing.assert_close(torch.tensor(first.embedding), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.tensor(second.outputs.embedding),
                                   torch.nn.functional.normalize(expected, dim=0),
                                   rtol=1e-4, atol=1e-5)
    if "prefix_cached" in engine:  # LAST embeddings read it, MEAN and CLS not
        generation_hits = 16  # its second run finds its first block
        if pooling_type == "LAST":
            assert blocks.prefix_cache_hits > generation_hits
        else:
            assert blocks.prefix_cache_hits == generation_hits


def test_a_recomputed_prompt_pools_anew():
    """Chunks of a 10-token MEAN prompt: 0..3, 4..6, then preempted and recomputed as 0..4,
    5..9; only the recomputation's states count (and CLS's first token is the recomputed one)."""
    ids = list(range(10))
    states = [torch.randn(12, 8) for _ in range(4)]
    for pooling_type in PoolingType:
        seq = Sequence(0, ids)
        group = SequenceGroup("r", None, ids, SamplingParams(), seq)
        group.pooling_type = pooling_type
        results = []
        for hidden, (start, end) in zip(states, [(0, 4), (4, 7), (0, 5), (5, 10)]):
            chunk = pooling_chunk(group, seq, start, end, offset=2)  # rows 0, 1: another request's
            results.append(pool(hidden, [chunk] if chunk is not None else []))
        assert results[:3] == [None] * 3 and seq.pooled_so_far is None
        recomputed = torch.cat([states[2][2:7], states[3][2:7]])
        expected = REFERENCE[pooling_type.value](recomputed)
        torch.testing.assert_close(results[3], expected[None], rtol=1e-6, atol=1e-6)
