"""A shut-down engine lets go of its weights and KV cache, so that another engine in the same
process finds the memory free (on a GPU it sizes its cache from what is left)."""
import gc
import weakref

from inference_engine import LLM
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint


def test_shutdown_frees_the_model_and_the_cache(tmp_path):
    path = write_hf_checkpoint(tmp_path / "tiny", tiny_llama_config(), tokenizer=False)
    llm = LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=64,
              cpu_kv_cache_space_gib=0.01)
    runner = llm.llm_engine.executor.driver.model_runner
    model, cache = weakref.ref(runner.model), weakref.ref(runner.cache_engine.kv_cache)
    del runner
    llm.shutdown()
    llm.shutdown()  # twice is fine
    gc.collect()
    assert model() is None and cache() is None
