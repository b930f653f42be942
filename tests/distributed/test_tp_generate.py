"""Tensor parallelism end to end on CPU (gloo): TP=2 through `mp` and through Ray generates
exactly the tokens of TP=1 in float32, on tiny random Llamas and a tiny Qwen3-MoE (experts split
by their intermediate size), and the same embeddings; so does TP=8 on a tiny Bloom; the embedded
model (9 query, 3 KV heads) is refused at TP=2 with the head counts named, and matches TP=1 at
TP=3; TP=2 with speculative decoding gives TP=1's greedy tokens."""
import pytest

from conftest import ENGINE_KWARGS
from inference_engine import LLM, PoolingParams, SamplingParams

# Lengths around the block size (16), so prompts span several blocks and end mid-block.
PROMPTS = [{"prompt_token_ids": [(7 * i + 11 * j) % 40000 + 3 for j in range(n)]}
           for i, n in enumerate([5, 16, 23, 40])]
GREEDY = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True, logprobs=3)
# Two samples of one prompt share its last block until they diverge: copy-on-write, so every
# rank must copy its own share of the cache (blocks_to_copy).
SEEDED_PAIR = SamplingParams(temperature=1.0, n=2, seed=1234, max_tokens=8, ignore_eos=True)


def _run(model: str | None, **kwargs) -> list:
    llm = LLM(model, **{**ENGINE_KWARGS, **kwargs})
    try:
        greedy = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
        seeded = llm.generate(PROMPTS[2], SEEDED_PAIR, use_tqdm=False)
    finally:
        llm.llm_engine.executor.shutdown()
    return greedy + seeded


def _assert_same(reference: list, outputs: list) -> None:
    for ref, out in zip(reference, outputs, strict=True):
        for ref_c, out_c in zip(ref.outputs, out.outputs, strict=True):
            assert out_c.token_ids == ref_c.token_ids
            for ref_lp, out_lp in zip(ref_c.logprobs or [], out_c.logprobs or []):
                assert ref_lp.keys() == out_lp.keys()
                for token, lp in ref_lp.items():
                    assert out_lp[token].logprob == pytest.approx(lp.logprob, abs=1e-4)


@pytest.fixture(scope="module")
def tp1_reference(tiny_gqa, tiny_mqa) -> dict:
    return {path: _run(path) for path in (tiny_gqa, tiny_mqa)}


@pytest.mark.parametrize("checkpoint", ["tiny_gqa", "tiny_mqa"])
def test_tp2_mp_matches_tp1(request, checkpoint, tp1_reference):
    path = request.getfixturevalue(checkpoint)
    outputs = _run(path, tensor_parallel_size=2, distributed_executor_backend="mp")
    _assert_same(tp1_reference[path], outputs)


@pytest.mark.parametrize("checkpoint", ["tiny_gqa", "tiny_mqa"])
def test_tp2_ray_matches_tp1(request, checkpoint, tp1_reference, ray_cluster):
    path = request.getfixturevalue(checkpoint)
    outputs = _run(path, tensor_parallel_size=2, distributed_executor_backend="ray")
    _assert_same(tp1_reference[path], outputs)


@pytest.mark.parametrize("backend", ["mp", "ray"])
def test_tp2_async_scheduling_matches_tp1(request, backend, tp1_reference, tiny_gqa):
    """The driver broadcasts each step's sampled tokens to the other ranks on the device; the
    next step, launched before they are read, gives the tokens of TP=1."""
    if backend == "ray":
        request.getfixturevalue("ray_cluster")
    outputs = _run(tiny_gqa, tensor_parallel_size=2, distributed_executor_backend=backend,
                   async_scheduling=True)
    _assert_same(tp1_reference[tiny_gqa], outputs)


def test_tp2_mp_speculative_decoding_matches_tp1(tiny_gqa):
    """Steps with drafts (built on the driver, run by both ranks) give TP=1's greedy tokens
    without drafts; the prompts repeat a pattern, so the proposer drafts."""
    prompts = [{"prompt_token_ids": [3 + 17 * i + j % (3 + i) for j in range(12 + 9 * i)]}
               for i in range(4)]
    outputs = {}
    for kwargs in ({}, {"tensor_parallel_size": 2, "distributed_executor_backend": "mp",
                        "speculative_config": {"num_speculative_tokens": 3}}):
        llm = LLM(tiny_gqa, **{**ENGINE_KWARGS, **kwargs})
        try:
            outputs[bool(kwargs)] = llm.generate(prompts, GREEDY, use_tqdm=False)
            drafts = llm.llm_engine.num_draft_tokens_total
        finally:
            llm.llm_engine.executor.shutdown()
    assert drafts > 0
    _assert_same(outputs[False], outputs[True])


def test_bloom_tp8_mp_matches_tp1(tiny_bloom):
    reference = _run(tiny_bloom)
    outputs = _run(tiny_bloom, tensor_parallel_size=8, distributed_executor_backend="mp")
    _assert_same(reference, outputs)


def test_mixture_of_experts_tp2_mp_matches_tp1(tmp_path):
    from utils.hf_checkpoint import tiny_qwen3_moe_config, write_moe_checkpoint
    path = write_moe_checkpoint(tmp_path / "moe", tiny_qwen3_moe_config(), seed=4)
    _assert_same(_run(path), _run(path, tensor_parallel_size=2, distributed_executor_backend="mp"))


def test_embedded_model_refuses_tp2_naming_its_heads():
    from inference_engine.engine.arg_utils import EngineArgs
    from inference_engine.executor import create_executor
    config = EngineArgs(tensor_parallel_size=2, **ENGINE_KWARGS).create_engine_config()
    assert config.parallel_config.distributed_executor_backend in ("mp", "ray")
    with pytest.raises(ValueError, match=r"9 query heads, 3 KV heads.*Sizes that work: 1, 3"):
        create_executor(config, None)  # refused before any rank is started


@pytest.mark.slow
def test_embedded_model_tp3_mp_matches_tp1():
    reference = _run(None)
    _assert_same(reference, _run(None, tensor_parallel_size=3, distributed_executor_backend="mp"))


def test_tp2_mp_embeddings_match_tp1(tiny_gqa):
    prompts = PROMPTS + [PROMPTS[1]]
    params = [PoolingParams(), GREEDY, PoolingParams(dimensions=8), GREEDY, PoolingParams()]
    outputs = []
    for kwargs in ({}, {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}):
        llm = LLM(tiny_gqa, **{**ENGINE_KWARGS, **kwargs})
        try:
            outputs.append(llm.generate(prompts, params, use_tqdm=False))
        finally:
            llm.llm_engine.executor.shutdown()
    for one, two in zip(*outputs, strict=True):
        if one.embedding is None:
            assert two.outputs[0].token_ids == one.outputs[0].token_ids
        else:
            assert two.embedding == pytest.approx(one.embedding, abs=1e-5)


@pytest.mark.parametrize("checkpoint", ["tiny_gqa", "tiny_mqa"])
def test_tp2_mp_lora_matches_tp1(request, checkpoint, tmp_path):
    """Each rank holds its share of every adapter (B split with a column-parallel weight's
    rows, A with a row-parallel one's columns; KV slices replicated where ranks outnumber KV
    heads); one step mixes two adapters and the base model."""
    from transformers import AutoConfig

    from inference_engine.lora import LoRARequest
    from utils.lora_files import write_random_adapter
    path = request.getfixturevalue(checkpoint)
    config = AutoConfig.from_pretrained(path)
    loras = [LoRARequest(f"a{i}", i, write_random_adapter(tmp_path / f"a{i}", config, rank=r,
                                                          seed=i, scale=0.3))
             for i, r in ((1, 8), (2, 4))]
    choices = [loras[0], None, loras[1], loras[0]]
    outputs = []
    for kwargs in ({}, {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}):
        llm = LLM(path, **{**ENGINE_KWARGS, **kwargs}, enable_lora=True, max_loras=2,
                  max_lora_rank=8)
        try:
            outputs.append(llm.generate(PROMPTS, GREEDY, use_tqdm=False, lora_request=choices))
        finally:
            llm.llm_engine.executor.shutdown()
    _assert_same(*outputs)
    base = _run(path)[:len(PROMPTS)]
    assert outputs[0][0].outputs[0].token_ids != base[0].outputs[0].token_ids
