"""compressed-tensors' `int-quantized` W8A8-INT8, made by the library's own compressor: loaded
weights equal its decompression (fused q/k/v with a scale each), a layer multiplies as the
plain-PyTorch W8A8 reference does (activations per token, or with a static scale), a whole model
serves, two ranks generate as one."""
import pytest
import torch

from inference_engine import LLM, SamplingParams
from inference_engine.engine.arg_utils import EngineArgs
from utils.w8a8_checkpoint import ct_tensors, ct_w8a8_config, write_w8a8_checkpoint

PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]
GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
INPUT_SCALE = 0.01


def write_checkpoint(path, strategy: str, static: bool, seed: int = 0) -> tuple[str, dict]:
    inputs = "tensor" if static else "token"
    return write_w8a8_checkpoint(
        path, ct_w8a8_config("int", strategy, inputs, dynamic=not static),
        lambda w: ct_tensors(w, "int", strategy, INPUT_SCALE if static else None), seed)


def engine(path: str, **kwargs) -> LLM:
    return LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
               cpu_kv_cache_space_gib=0.05, **kwargs)


@pytest.mark.parametrize("strategy,static", [("channel", False), ("tensor", True)])
def test_loaded_as_the_library_decompresses_and_multiplied_as_the_reference(tmp_path, strategy,
                                                                            static):
    path, dequantized = write_checkpoint(tmp_path, strategy, static, seed=1)
    config = EngineArgs(model=path, dtype="float32").create_engine_config().model_config
    assert config.quantization == "compressed-tensors"
    llm = engine(path)
    qkv = llm.llm_engine.executor.driver.model_runner.model.model.layers[0].self_attn.qkv_proj
    prefix = "model.layers.0.self_attn."
    expected = torch.cat([dequantized[prefix + p + ".weight"]
                          for p in ("q_proj", "k_proj", "v_proj")])
    assert qkv.weight.dtype == torch.int8
    torch.testing.assert_close(qkv.weight.float() * qkv.weight_scale[:, None], expected,
                               rtol=1e-6, atol=1e-7)
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(2))
    scale = (torch.tensor(INPUT_SCALE) if static
             else x.abs().amax(1, keepdim=True) / 127)
    reference_x = (x / scale).round().clamp(-128, 127) * scale
    torch.testing.assert_close(qkv(x), reference_x @ expected.t(), rtol=1e-5, atol=1e-5)
    outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)
    assert all(len(o.outputs[0].token_ids) == 8 for o in outputs)
    llm.shutdown()


def test_two_ranks_generate_as_one_with_static_scales(tmp_path):
    path, _ = write_checkpoint(tmp_path, "channel", True, seed=3)
    runs = []
    for tp in (1, 2):
        llm = engine(path, tensor_parallel_size=tp)
        runs.append([o.outputs[0].token_ids for o in llm.generate(
            prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)])
        llm.shutdown()
    assert runs[0] == runs[1]
