"""The engine with an adapter equals the engine on the checkpoint with that adapter merged into
its weights (no PEFT needed: the oracle the GPU test uses too), beside base-model requests."""
from inference_engine import LLM, SamplingParams
from inference_engine.lora import LoRARequest
from utils.hf_checkpoint import tiny_llama_config
from utils.lora_files import merged_checkpoint, write_random_adapter

PROMPTS = [[5 + (7 * i + j) % 200 for j in range(3 + 5 * i)] for i in range(6)]
PARAMS = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)


def test_an_adapter_equals_its_merged_weights(base, tmp_path):
    adapter = write_random_adapter(tmp_path / "adapter", tiny_llama_config(), rank=4, seed=5)
    merged = merged_checkpoint(base, adapter, tmp_path / "merged")
    lora = LoRARequest("a", 1, adapter)
    llm = LLM(base, dtype="float32", cpu_kv_cache_space_gib=0.1, enable_lora=True,
              max_lora_rank=8)
    mixed = llm.generate(prompt_token_ids=PROMPTS * 2, sampling_params=PARAMS, use_tqdm=False,
                         lora_request=[lora] * len(PROMPTS) + [None] * len(PROMPTS))
    want = LLM(merged, dtype="float32", cpu_kv_cache_space_gib=0.1).generate(
        prompt_token_ids=PROMPTS, sampling_params=PARAMS, use_tqdm=False)
    plain = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in mixed[:len(PROMPTS)]] == [
        o.outputs[0].token_ids for o in want]
    assert [o.outputs[0].token_ids for o in mixed[len(PROMPTS):]] == [
        o.outputs[0].token_ids for o in plain]
    assert [o.outputs[0].token_ids for o in want] != [o.outputs[0].token_ids for o in plain]
