"""Small Llama (or Qwen2, Qwen3) GGUF files for tests, written the way llama.cpp's converter
writes them.

    config = tiny_llama_config()
    state_dict = random HF-named tensors (see tests/utils/hf_checkpoint.py)
    write_llama_gguf(tmp_path / "m.gguf", config, state_dict, qtype=GGMLQuantizationType.Q4_1)

Weight matrices are quantized to `qtype`; norms stay F32 (as llama.cpp keeps 1-D tensors), and
Llama's q/k projections are permuted into llama.cpp's interleaved rotary order.
"""
import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as Q

from inference_engine.transformers_utils.embedded import embedded_model_path
from inference_engine.transformers_utils.gguf_reader import GGUFFile

_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
          "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate",
          "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
          "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
_GLOBAL = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


def llama_cpp_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """The converter's permutation, written from its definition: within each head, HF row
    s * head_dim/2 + i moves to row 2*i + s."""
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, 2, half, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def gguf_name(hf_name: str) -> str:
    stem, _, suffix = hf_name.rpartition(".")
    if stem in _GLOBAL:
        return f"{_GLOBAL[stem]}.{suffix}"
    _, _, layer, module = stem.split(".", 3)
    return f"blk.{layer}.{_LAYER[module]}.{suffix}"


def write_llama_gguf(path, config, state_dict: dict[str, torch.Tensor], qtype: Q = Q.F32,
                     arch: str = "llama", with_tokenizer: bool = True,
                     raw_tensors: dict[str, tuple[np.ndarray, Q]] | None = None) -> str:
    """Write `state_dict` (HF names and layout) as a GGUF file of architecture `arch`.

    `raw_tensors` adds tensors verbatim (bytes and declared type), e.g. of unsupported types.
    With `with_tokenizer`, the embedded model's vocabulary and chat template are copied in.
    """
    w = gguf.GGUFWriter(str(path), arch)
    w.add_uint32(f"{arch}.block_count", config.num_hidden_layers)
    w.add_uint32(f"{arch}.context_length", config.max_position_embeddings)
    w.add_uint32(f"{arch}.embedding_length", config.hidden_size)
    w.add_uint32(f"{arch}.feed_forward_length", config.intermediate_size)
    w.add_uint32(f"{arch}.attention.head_count", config.num_attention_heads)
    w.add_uint32(f"{arch}.attention.head_count_kv", config.num_key_value_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    w.add_uint32(f"{arch}.rope.dimension_count", head_dim)
    w.add_float32(f"{arch}.rope.freq_base", config.rope_parameters["rope_theta"])
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", config.rms_norm_eps)
    if with_tokenizer:
        _copy_tokenizer(w)
    for name, tensor in state_dict.items():
        tensor = tensor.float()
        if ".q_proj." in name and arch == "llama":  # (the converter permutes Llama's only)
            tensor = llama_cpp_permute(tensor, config.num_attention_heads)
        elif ".k_proj." in name and arch == "llama":
            tensor = llama_cpp_permute(tensor, config.num_key_value_heads)
        array = tensor.numpy()
        if array.ndim == 1 or qtype == Q.F32:
            w.add_tensor(gguf_name(name), array)
        elif qtype == Q.F16:
            w.add_tensor(gguf_name(name), array.astype(np.float16))
        else:
            w.add_tensor(gguf_name(name), gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    for name, (data, raw_type) in (raw_tensors or {}).items():
        w.add_tensor(name, data, raw_dtype=raw_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def _copy_tokenizer(w: gguf.GGUFWriter) -> None:
    """Copy every tokenizer field of the embedded file, with the value types it has there, so
    that the converted tokenizer is cached once for both files."""
    V = gguf.GGUFValueType
    for key, value in GGUFFile(embedded_model_path()).metadata.items():
        if not key.startswith("tokenizer."):
            continue
        if isinstance(value, list):
            sub_type = V.STRING if isinstance(value[0], str) else V.INT32
            w.add_key_value(key, value, V.ARRAY, sub_type=sub_type)
        elif isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_string(key, value)
