"""LoRA on a GPU (CUDA graphs and async scheduling on; steps with adapters run eagerly): two
adapters and the base model in the same steps give the tokens of each adapter merged into the
weights, float32, and of the base model alone; bf16 runs too."""
import pytest
import torch
from transformers import AutoConfig

from inference_engine import SamplingParams
from inference_engine.lora import LoRARequest
from utils.gpu_engine import float32_engine
from utils.lora_files import merged_checkpoint, write_random_adapter

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[5 + (7 * i + j) % 3000 for j in range(3 + 11 * i)] for i in range(12)]
PARAMS = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)


def tokens(outputs) -> list[list[int]]:
    return [o.outputs[0].token_ids for o in outputs]


def test_adapters_on_the_gpu_equal_their_merged_weights(tiny_gpu_checkpoint, tmp_path):
    config = AutoConfig.from_pretrained(tiny_gpu_checkpoint)
    adapters = [write_random_adapter(tmp_path / f"a{i}", config, rank=r, seed=i)
                for i, r in ((1, 8), (2, 4))]
    loras = [LoRARequest(f"a{i}", i + 1, path) for i, path in enumerate(adapters)]
    n = len(PROMPTS)
    with float32_engine(tiny_gpu_checkpoint, enable_lora=True, max_loras=2, max_lora_rank=8,
                        max_num_seqs=32) as llm:
        mixed = llm.generate(prompt_token_ids=PROMPTS * 3, sampling_params=PARAMS,
                             use_tqdm=False, lora_request=[loras[0]] * n + [None] * n
                             + [loras[1]] * n)
    with float32_engine(tiny_gpu_checkpoint) as llm:
        base = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS, use_tqdm=False)
    assert tokens(mixed[n:2 * n]) == tokens(base)
    for k, adapter in ((0, adapters[0]), (2, adapters[1])):
        merged = merged_checkpoint(tiny_gpu_checkpoint, adapter, tmp_path / f"merged{k}")
        with float32_engine(merged) as llm:
            want = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS,
                                use_tqdm=False)
        assert tokens(mixed[k * n:(k + 1) * n]) == tokens(want)
        assert tokens(want) != tokens(base)


def test_adapters_run_in_bf16(tiny_gpu_checkpoint, tmp_path):
    from inference_engine import LLM
    config = AutoConfig.from_pretrained(tiny_gpu_checkpoint)
    lora = LoRARequest("a", 1, write_random_adapter(tmp_path / "a", config, rank=8))
    llm = LLM(tiny_gpu_checkpoint, dtype="bfloat16", device="cuda", skip_tokenizer_init=True,
              num_gpu_blocks_override=512, enable_lora=True)
    try:
        out = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS, use_tqdm=False,
                           lora_request=lora)
        assert all(len(o.outputs[0].token_ids) == PARAMS.max_tokens for o in out)
    finally:
        llm.llm_engine.executor.shutdown()
