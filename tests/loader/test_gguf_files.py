"""Small GGUF files written like llama.cpp's converter: every supported type, and the errors."""
import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from utils.gguf_file import write_llama_gguf
from utils.hf_checkpoint import (random_state_dict, tiny_llama_config, tiny_qwen2_config,
                                 tiny_qwen3_config)

from inference_engine.model_executor.loader import iterate_weights
from inference_engine.transformers_utils.load_format import resolve_load_format
from inference_engine.model_executor.loader.gguf_loader import dequantize
from inference_engine.transformers_utils.config import get_hf_config
from inference_engine.transformers_utils.gguf_reader import GGUFFile

# Quantization error bound per type, relative to the largest weight of a block.
TYPES = {Q.F32: 0.0, Q.F16: 1e-3, Q.BF16: 1e-2, Q.Q8_0: 1e-2, Q.Q4_0: 0.15, Q.Q4_1: 0.1,
         Q.Q5_0: 0.07}  # Q5_0 goes through gguf's numpy code


@pytest.fixture(scope="module")
def config():
    return tiny_llama_config(hidden_size=128, intermediate_size=256, num_attention_heads=4,
                             num_key_value_heads=2, head_dim=32, vocab_size=320)


@pytest.fixture(scope="module")
def state_dict(config):
    return random_state_dict(config, seed=1)


@pytest.mark.parametrize("qtype", list(TYPES), ids=lambda q: q.name)
def test_every_type_dequantizes_like_gguf_and_unpermutes(tmp_path, config, state_dict, qtype):
    path = write_llama_gguf(tmp_path / "m.gguf", config, state_dict, qtype, with_tokenizer=False)
    assert resolve_load_format(path, "auto") == "gguf"
    # Bitwise equal to gguf's own numpy dequantization, tensor by tensor.
    f = GGUFFile(path)
    for info in f.tensors.values():
        rows = f.raw(info).numpy().reshape(-1, info.nbytes // int(np.prod(info.shape[:-1])))
        expected = gguf.quants.dequantize(rows, info.qtype).reshape(info.shape)
        assert torch.equal(dequantize(f, info), torch.from_numpy(expected)), info.name
    # Back in HF names and layout: F32 round-trips exactly, proving the un-permutation.
    loaded = dict(iterate_weights(path, "gguf", get_hf_config(path)))
    assert set(loaded) == set(state_dict)
    for name, original in state_dict.items():
        assert loaded[name].dtype == torch.float32 and loaded[name].shape == original.shape
        tol = TYPES[qtype] * original.abs().max().item() if original.dim() > 1 else 0.0
        torch.testing.assert_close(loaded[name], original, rtol=0, atol=tol, msg=name)


def test_config_from_metadata(tmp_path, config, state_dict):
    path = write_llama_gguf(tmp_path / "m.gguf", config, state_dict, Q.Q8_0, with_tokenizer=False)
    got = get_hf_config(path)
    assert got.architectures == ["LlamaForCausalLM"] and got.model_type == "llama"
    for field in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                  "num_attention_heads", "num_key_value_heads", "head_dim",
                  "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(got, field) == getattr(config, field), field
    assert got.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}
    assert got.rms_norm_eps == pytest.approx(config.rms_norm_eps)


@pytest.mark.parametrize("make_config", [tiny_qwen2_config, tiny_qwen3_config])
def test_qwen_files_round_trip_unpermuted(tmp_path, make_config):
    """Qwen2 (q, k, v biases) and Qwen3 (q and k norms): the converter leaves their q and k rows
    in order; F32 comes back exactly, with the config of their own type."""
    config = make_config(vocab_size=320)
    state_dict = random_state_dict(config, seed=2)
    arch = config.model_type
    path = write_llama_gguf(tmp_path / "m.gguf", config, state_dict, arch=arch,
                            with_tokenizer=False)
    got = get_hf_config(path)
    assert got.model_type == arch and got.architectures == config.architectures
    assert not getattr(got, "attention_bias", False)  # no bias on o_proj, in either
    loaded = dict(iterate_weights(path, "gguf", got))
    assert set(loaded) == set(state_dict)
    for name, original in state_dict.items():
        torch.testing.assert_close(loaded[name], original, rtol=0, atol=0, msg=name)


def test_tied_head_is_not_yielded(tmp_path):
    config = tiny_llama_config(tie_word_embeddings=True, vocab_size=256)
    state_dict = random_state_dict(config)
    path = write_llama_gguf(tmp_path / "m.gguf", config, state_dict, with_tokenizer=False)
    assert get_hf_config(path).tie_word_embeddings
    assert "lm_head.weight" not in dict(iterate_weights(path, "auto", config))


def test_unsupported_quant_type_names_type_and_tensor(tmp_path, config, state_dict):
    weights = dict(state_dict)
    up = weights.pop("model.layers.1.mlp.up_proj.weight")
    block, size = gguf.GGML_QUANT_SIZES[Q.Q8_1]  # a type gguf has no dequantizer for
    q8_1 = np.zeros((up.shape[0], up.shape[1] // block * size), dtype=np.uint8)
    path = write_llama_gguf(tmp_path / "m.gguf", config, weights, with_tokenizer=False,
                            raw_tensors={"blk.1.ffn_up.weight": (q8_1, Q.Q8_1)})
    with pytest.raises(ValueError, match=r"blk\.1\.ffn_up\.weight.*Q8_1"):
        list(iterate_weights(path, "gguf", config))


def test_unknown_architecture_is_refused(tmp_path, config, state_dict):
    path = write_llama_gguf(tmp_path / "m.gguf", config, state_dict, arch="gpt2",
                            with_tokenizer=False)
    with pytest.raises(ValueError, match="gpt2"):
        get_hf_config(path)
    with pytest.raises(ValueError, match="gpt2"):
        list(iterate_weights(path, "gguf", config))


def test_unknown_tensor_is_refused(tmp_path, config, state_dict):
    extra = {"blk.0.mystery.weight": (np.zeros((4, 4), dtype=np.float32), Q.F32)}
    path = write_llama_gguf(tmp_path / "m.gguf", config, state_dict, with_tokenizer=False,
                            raw_tensors=extra)
    with pytest.raises(ValueError, match="mystery"):
        list(iterate_weights(path, "gguf", config))


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"PK\x03\x04" + bytes(64))
    with pytest.raises(ValueError, match="not a GGUF file"):
        get_hf_config(str(path))
