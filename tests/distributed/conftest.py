"""Tiny random Llama checkpoints whose heads split over two ranks, a tiny Bloom whose heads split
over eight, and a local Ray for the Ray backend (started once per session, two CPU slots)."""
import os

import pytest

from utils.hf_checkpoint import (tiny_bloom_config, tiny_llama_config, write_bloom_checkpoint,
                                 write_hf_checkpoint)

# float32 everywhere: tensor parallelism only reorders float sums, so greedy tokens must match.
ENGINE_KWARGS = dict(dtype="float32", device="cpu", cpu_kv_cache_space_gib=0.05,
                     max_model_len=512, max_num_seqs=8)


@pytest.fixture(scope="session")
def tiny_gqa(tmp_path_factory) -> str:
    """4 query heads over 2 KV heads: each rank holds 2 query heads and 1 KV head."""
    return write_hf_checkpoint(tmp_path_factory.mktemp("tiny-gqa"), tiny_llama_config(), seed=1)


@pytest.fixture(scope="session")
def tiny_mqa(tmp_path_factory) -> str:
    """One KV head, replicated on both ranks; tied embeddings and biases on every projection."""
    config = tiny_llama_config(num_key_value_heads=1, tie_word_embeddings=True,
                               attention_bias=True, mlp_bias=True)
    return write_hf_checkpoint(tmp_path_factory.mktemp("tiny-mqa"), config, seed=2)


@pytest.fixture(scope="session")
def tiny_bloom(tmp_path_factory) -> str:
    """8 ALiBi heads of 16, one per rank at TP=8: each rank must take its own head's slope and
    its own head's rows of the per-head interleaved query_key_value."""
    config = tiny_bloom_config(hidden_size=128, n_head=8, n_layer=2)
    return write_bloom_checkpoint(tmp_path_factory.mktemp("tiny-bloom"), config, seed=3)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray; without Ray installed the Ray tests skip, except under CI where they must run."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed but CI must run the Ray tests: pip install '.[test]'")
        pytest.skip("ray is not installed (pip install ray); CI runs these tests")
    # "local": always a fresh instance, never a cluster that happens to run on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
