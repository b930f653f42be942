"""Weights from a GGUF file, renamed to Hugging Face names and dequantized to float32.

The types the engine meets most (F32, F16, BF16, Q8_0, Q4_0, Q4_1) are dequantized with torch,
about 2.5 times faster than gguf's numpy code and bit for bit equal to it: each value is one
float16 scale times a small integer (plus, for Q4_1, a float16 minimum), evaluated in the same
order. Every other type that the `gguf` package can dequantize goes through it.

llama.cpp's converter permutes the rows of Llama's q and k projections so that each head's
rotary pairs are interleaved (GPT-J style); `unpermute_rows` restores the Hugging Face order,
where the first and second halves of each head rotate together.
"""
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager

import gguf
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q

from inference_engine.transformers_utils.config import GGUF_ARCHITECTURES
from inference_engine.transformers_utils.gguf_reader import GGUFFile, GGUFTensorInfo

# GGUF tensor name (after `blk.N.`) -> Hugging Face name (after `model.layers.N.`).
_LAYER_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",  # Qwen3
}
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# Llama 3.1 files carry precomputed rope frequencies; the HF model derives them from its config.
_SKIPPED = {"rope_freqs.weight"}
_LAYER_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def iterate_gguf_weights(path: str, hf_config) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (HF name, float32 tensor in HF layout) for every tensor of a Llama, Qwen2 or Qwen3
    GGUF file."""
    f = GGUFFile(path)
    if f.architecture not in GGUF_ARCHITECTURES:
        raise ValueError(f"{path}: GGUF architecture {f.architecture!r} is not supported")
    # llama.cpp's converter interleaves the rotary halves of q and k rows for Llama only.
    heads = {"attn_q": hf_config.num_attention_heads,
             "attn_k": getattr(hf_config, "num_key_value_heads", None) or hf_config.num_attention_heads
             } if f.architecture == "llama" else {}
    for info in f.tensors.values():
        if info.name in _SKIPPED:
            continue
        name, kind = hf_name(info.name)
        with _one_thread():
            tensor = dequantize(f, info)
            if kind in heads:
                tensor = unpermute_rows(tensor, heads[kind])
        yield name, tensor


@contextmanager
def _one_thread():
    """Run torch ops on one thread. Dequantization is a few memory-bound passes per tensor,
    which extra threads barely speed up; but where cores are shared, OpenMP's spin-waiting
    made it ten times slower (18 s instead of 1.5 s for the embedded model on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def hf_name(gguf_name: str) -> tuple[str, str]:
    """The Hugging Face name of a GGUF tensor, and its GGUF kind (`attn_q`, `token_embd`, ...)."""
    if m := _LAYER_RE.fullmatch(gguf_name):
        layer, kind, suffix = m.groups()
        if kind in _LAYER_NAMES:
            return f"model.layers.{layer}.{_LAYER_NAMES[kind]}.{suffix}", kind
    else:
        kind, _, suffix = gguf_name.rpartition(".")
        if kind in _GLOBAL_NAMES and suffix in ("weight", "bias"):
            return f"{_GLOBAL_NAMES[kind]}.{suffix}", kind
    raise ValueError(f"GGUF tensor {gguf_name!r} has no Hugging Face counterpart")


def unpermute_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Invert llama.cpp's q/k permutation: within each head, GGUF row 2*i + s is HF row
    s * head_dim/2 + i (s in {0, 1}). Works for weights [rows, cols] and biases [rows]."""
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def dequantize(f: GGUFFile, info: GGUFTensorInfo) -> torch.Tensor:
    """The tensor as float32 with shape `info.shape`; ValueError for a type we cannot read."""
    qtype = info.qtype
    if qtype in _TORCH_DEQUANT:
        type_size = GGML_QUANT_SIZES[qtype][1]
        return _TORCH_DEQUANT[qtype](f.raw(info).view(-1, type_size)).reshape(info.shape)
    if qtype in GGML_QUANT_SIZES:
        rows = f.raw(info).numpy().reshape(math.prod(info.shape[:-1]), -1)
        try:
            return torch.from_numpy(gguf.quants.dequantize(rows, qtype)).reshape(info.shape)
        except NotImplementedError:
            pass
    raise ValueError(f"GGUF tensor {info.name!r} has quant type {qtype.name}, which is not "
                     f"supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, and the types the gguf "
                     f"package dequantizes, such as Q5_0, Q5_1 and Q2_K..Q6_K)")


def _f16(blocks: torch.Tensor, start: int) -> torch.Tensor:
    """The float16 stored at byte `start` of every block, as a float32 column."""
    return blocks[:, start:start + 2].contiguous().view(torch.float16).float()


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """ggml packs element i in the low nibble and element i + 16 in the high nibble of byte i.
    Written straight into one float32 buffer: no concatenated uint8 copy."""
    out = torch.empty(qs.shape[0], 2 * qs.shape[1], dtype=torch.float32)
    out[:, :qs.shape[1]] = qs & 0x0F
    out[:, qs.shape[1]:] = qs >> 4
    return out


def _q8_0(b: torch.Tensor) -> torch.Tensor:  # [d: f16][32 x int8], value = q * d
    return b[:, 2:].contiguous().view(torch.int8).float().mul_(_f16(b, 0))


def _q4_0(b: torch.Tensor) -> torch.Tensor:  # [d: f16][16 bytes of nibbles], value = (q - 8) * d
    return _nibbles(b[:, 2:]).sub_(8).mul_(_f16(b, 0))


def _q4_1(b: torch.Tensor) -> torch.Tensor:  # [d: f16][m: f16][16 bytes], value = q * d + m
    # Two roundings, multiply then add, as gguf's numpy code does: a fused multiply-add
    # would round once and differ in the last bit.
    return _nibbles(b[:, 4:]).mul_(_f16(b, 0)).add_(_f16(b, 2))


_TORCH_DEQUANT = {
    Q.F32: lambda b: b.view(torch.float32),
    Q.F16: lambda b: b.view(torch.float16).float(),
    Q.BF16: lambda b: b.view(torch.bfloat16).float(),
    Q.Q8_0: _q8_0,
    Q.Q4_0: _q4_0,
    Q.Q4_1: _q4_1,
}
