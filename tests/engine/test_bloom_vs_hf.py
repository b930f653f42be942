"""Bloom (ALiBi attention, LayerNorm, fused per-head QKV) token-identical to transformers.

Tiny random Blooms written by transformers' save_pretrained; greedy float32 over one batch of
prompts from 1 token to several KV blocks (block size 8), each decoding 24 tokens, so both the
prefill and the decode attention apply ALiBi across block boundaries.
"""
import pytest

from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import tiny_bloom_config, write_bloom_checkpoint
from utils.oracle import assert_greedy_matches_transformers

PROMPT_LENGTHS = [1, 5, 8, 13, 37, 90]
PROMPTS = [{"prompt_token_ids": [(104729 * i + 7919 * j) % 49000 + 100 for j in range(n)]}
           for i, n in enumerate(PROMPT_LENGTHS)]


@pytest.mark.parametrize("overrides,strip_prefix", [
    pytest.param({}, False, id="4-heads"),
    # 6 = 4 + 2 and 12 = 8 + 4 heads: slopes beyond the largest power of two.
    pytest.param({"hidden_size": 96, "n_head": 6}, True, id="6-heads-unprefixed-names"),
    pytest.param({"hidden_size": 96, "n_head": 12, "n_layer": 2,
                  "apply_residual_connection_post_layernorm": True}, False,
                 id="12-heads-normed-residual"),
])
def test_tiny_random_bloom(tmp_path, overrides, strip_prefix):
    path = write_bloom_checkpoint(tmp_path / "bloom", tiny_bloom_config(**overrides), seed=5,
                                  strip_prefix=strip_prefix)
    outputs = assert_greedy_matches_transformers(path, PROMPTS, max_tokens=24, ignore_eos=True,
                                                 block_size=8)
    # Varied continuations: the comparison is not won by a model stuck on one token.
    assert len({tuple(out.outputs[0].token_ids) for out in outputs}) == len(PROMPTS)


def test_dummy_weights(tmp_path):
    path = write_bloom_checkpoint(tmp_path / "bloom", tiny_bloom_config(n_layer=1))
    llm = LLM(path, load_format="dummy", dtype="float32", cpu_kv_cache_space_gib=0.05)
    out = llm.generate(PROMPTS[:2], SamplingParams(max_tokens=4, ignore_eos=True), use_tqdm=False)
    assert [len(o.outputs[0].token_ids) for o in out] == [4, 4]
