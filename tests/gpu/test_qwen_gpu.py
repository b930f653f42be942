"""Qwen2 (biases on q, k, v), Qwen3 (per-head q/k RMSNorm through the compiled norm kernel),
Phi-3 (fused checkpoint tensors) and the mixtures of experts (Mixtral, Qwen3-MoE: every row
through every expert, inside CUDA graphs) on a GPU, float32: the greedy tokens of transformers on
the same GPU."""
import pytest
import torch

from inference_engine import SamplingParams
from utils.gpu_engine import float32_engine
from utils.hf_checkpoint import (tiny_mixtral_config, tiny_phi3_config, tiny_qwen2_config,
                                 tiny_qwen3_config, tiny_qwen3_moe_config, write_hf_checkpoint,
                                 write_moe_checkpoint)
from utils.oracle import hf_greedy

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[(37 * i + 3 * j) % 40000 + 5 for j in range(4 + 29 * i % 90)] for i in range(8)]


@pytest.mark.parametrize("make_config", [tiny_qwen2_config, tiny_qwen3_config, tiny_phi3_config,
                                         tiny_mixtral_config, tiny_qwen3_moe_config])
def test_tokens_of_transformers_on_the_same_gpu(tmp_path, make_config):
    from transformers import AutoModelForCausalLM
    config = make_config()
    if "Moe" in config.architectures[0] or "Mixtral" in config.architectures[0]:
        path = write_moe_checkpoint(tmp_path / "model", config, seed=7, tokenizer=False)
    else:
        path = write_hf_checkpoint(tmp_path / "model", config, seed=7, tokenizer=False)
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    with float32_engine(path, max_model_len=256) as llm:
        outs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).cuda().eval()
    for prompt, out in zip(PROMPTS, outs):
        assert out.outputs[0].token_ids == hf_greedy(hf, prompt, 16, None)
