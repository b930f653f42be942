"""GPTQ and AWQ checkpoints written from the formats' descriptions (AutoGPTQ's and GPTQModel's
packing, AutoAWQ's GEMM layout), independently of the engine's unpacking, with their
dequantized float twins.

    tensors, dequantized = quantize_gptq(weight, GPTQSpec(bits=4, group_size=32))
    gptq, floats = write_quantized_checkpoint(tmp_path, tiny_llama_config(), GPTQSpec(...))
    awq, floats = write_quantized_checkpoint(tmp_path, tiny_llama_config(), AWQSpec(32))

The twin holds exactly the weights the GPTQ tensors stand for (scale * (q - zero), with the
scale rounded to float16 as stored), so a correct loader gives the same greedy tokens on both.
"""
import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils.hf_checkpoint import random_state_dict, write_hf_checkpoint

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Prompts of 5 to 40 tokens for greedy_tokens.
PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]


def greedy_tokens(path: str, max_tokens: int = 12, **llm_kwargs) -> list[list[int]]:
    """The engine's greedy tokens for PROMPTS on the checkpoint at `path` (float32, CPU)."""
    from inference_engine import LLM, SamplingParams
    llm = LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
              cpu_kv_cache_space_gib=0.05, **llm_kwargs)
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    try:
        return [list(o.outputs[0].token_ids) for o in llm.generate(
            prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)]
    finally:
        llm.shutdown()


@dataclass(frozen=True)
class GPTQSpec:
    bits: int = 4
    group_size: int = 32  # -1: one group (a scale per output)
    desc_act: bool = False  # quantized in a shuffled input order, recorded in g_idx
    sym: bool = True
    checkpoint_format: str = "gptq"  # zeros stored minus one; "gptq_v2": as they are

    def quantization_config(self) -> dict:
        return {"quant_method": "gptq", "bits": self.bits, "group_size": self.group_size,
                "desc_act": self.desc_act, "sym": self.sym,
                "checkpoint_format": self.checkpoint_format}


def _pack(values: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Unsigned `bits`-bit values packed 32 / bits to an int32 along `axis`, lowest first."""
    per_int = 32 // bits
    moved = np.moveaxis(values.astype(np.uint64), axis, 0)
    packed = np.zeros((moved.shape[0] // per_int, *moved.shape[1:]), dtype=np.uint64)
    for i in range(per_int):
        packed |= moved[i::per_int] << np.uint64(bits * i)
    return np.moveaxis(packed.astype(np.uint32).view(np.int32), 0, axis)


def _quantize_groups(w: np.ndarray, g_idx: np.ndarray, bits: int,
                     sym: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """w [K, N] in groups of inputs (g_idx [K]): (q [K, N], zeros [G, N], float16 scales [G, N],
    the float32 weight [N, K] they stand for)."""
    maxq = (1 << bits) - 1
    groups = g_idx.max() + 1
    scales, zeros = np.empty((groups, w.shape[1])), np.empty((groups, w.shape[1]), dtype=np.int64)
    for g in range(groups):
        rows = w[g_idx == g]
        if sym:
            scales[g] = np.maximum(np.abs(rows).max(0), 1e-8) * 2 / maxq
            zeros[g] = (maxq + 1) // 2
        else:
            low, high = np.minimum(rows.min(0), 0), np.maximum(rows.max(0), 0)
            scales[g] = np.maximum(high - low, 1e-8) / maxq
            zeros[g] = np.clip(np.round(-low / scales[g]), 0, maxq)
    scales = scales.astype(np.float16)
    s, z = scales.astype(np.float64)[g_idx], zeros[g_idx]  # per input row
    q = np.clip(np.round(w / s) + z, 0, maxq).astype(np.int64)
    dequantized = ((q - z).astype(np.float32) * s.astype(np.float32)).T.copy()
    return q, zeros, scales, dequantized


def quantize_gptq(weight: torch.Tensor, spec: GPTQSpec,
                  seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A weight [N, K] as GPTQ tensors (qweight, qzeros, scales, g_idx), and the float32 weight
    [N, K] they stand for."""
    k = weight.shape[1]
    group = k if spec.group_size == -1 else spec.group_size
    order = np.random.default_rng(seed).permutation(k) if spec.desc_act else np.arange(k)
    g_idx = np.empty(k, dtype=np.int32)
    g_idx[order] = np.arange(k) // group  # inputs quantized in `order`, a group at a time
    q, zeros, scales, dequantized = _quantize_groups(weight.double().numpy().T, g_idx,
                                                     spec.bits, spec.sym)
    maxq = (1 << spec.bits) - 1
    stored_zeros = (zeros - 1) & maxq if spec.checkpoint_format == "gptq" else zeros
    tensors = {"qweight": torch.from_numpy(_pack(q, spec.bits, 0)),
               "qzeros": torch.from_numpy(_pack(stored_zeros, spec.bits, 1)),
               "scales": torch.from_numpy(scales), "g_idx": torch.from_numpy(g_idx)}
    return tensors, torch.from_numpy(dequantized)


@dataclass(frozen=True)
class AWQSpec:
    group_size: int = 32

    def quantization_config(self) -> dict:
        return {"quant_method": "awq", "bits": 4, "group_size": self.group_size,
                "zero_point": True, "version": "gemm"}


AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # the output in each nibble of an int32, lowest first


def _pack_awq(values: np.ndarray) -> np.ndarray:
    """[R, N] 4-bit values -> [R, N / 8] int32, each eight outputs in AutoAWQ's nibble order."""
    interleaved = values.reshape(values.shape[0], -1, 8)[:, :, list(AWQ_ORDER)]
    return _pack(interleaved.reshape(values.shape), 4, 1)


def quantize_awq(weight: torch.Tensor, spec: AWQSpec,
                 seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A weight [N, K] as AWQ tensors (qweight, qzeros, scales), and the float32 weight [N, K]
    they stand for."""
    g_idx = np.arange(weight.shape[1]) // spec.group_size
    q, zeros, scales, dequantized = _quantize_groups(weight.double().numpy().T, g_idx, 4, False)
    tensors = {"qweight": torch.from_numpy(_pack_awq(q)),
               "qzeros": torch.from_numpy(_pack_awq(zeros)), "scales": torch.from_numpy(scales)}
    return tensors, torch.from_numpy(dequantized)


@dataclass(frozen=True)
class SqueezeLLMSpec:
    def quantization_config(self) -> dict:
        return {"quant_method": "squeezellm", "wbits": 4}


def quantize_squeezellm(weight: torch.Tensor, spec: SqueezeLLMSpec,
                        seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A weight [N, K] as SqueezeLLM tensors: each output channel's 16 values at its own
    quantiles (a stand-in for the paper's k-means centroids) in float16, each weight the index
    of its nearest; and the float32 weight [N, K] they stand for."""
    w = weight.double().numpy()
    table = np.quantile(w, np.linspace(0, 1, 16), axis=1).T.astype(np.float16)  # [N, 16]
    index = np.abs(w[:, :, None] - table[:, None, :].astype(np.float64)).argmin(-1)  # [N, K]
    dequantized = np.take_along_axis(table.astype(np.float32), index, axis=1)
    tensors = {"qweight": torch.from_numpy(_pack(index.T, 4, 0)),
               "lookup_table": torch.from_numpy(table)}
    return tensors, torch.from_numpy(dequantized)


def write_quantized_checkpoint(path, config, spec: GPTQSpec | AWQSpec | SqueezeLLMSpec,
                               seed: int = 0) -> tuple[str, str]:
    """(quantized folder, float twin folder) of a random model of `config`: every projection of
    the decoder layers quantized as `spec` says (GPTQ, AWQ, SqueezeLLM), the rest as it was."""
    quantize = {GPTQSpec: quantize_gptq, AWQSpec: quantize_awq,
                SqueezeLLMSpec: quantize_squeezellm}[type(spec)]
    path = Path(path)
    state = random_state_dict(config, seed)
    quantized, floats = {}, {}
    for name, tensor in sorted(state.items()):
        module = name.removesuffix(".weight")
        parent, _, projection = module.rpartition(".")
        if name.endswith(".weight") and projection in PROJECTIONS:
            # Act-order follows the layer's input: q, k and v (and gate and up) read the same
            # one, so they share g_idx, as GPTQ's tools make them.
            reads = parent + (".o" if projection in ("o_proj", "down_proj") else "")
            order_seed = seed + sum(map(ord, reads))
            tensors, floats[name] = quantize(tensor, spec, seed=order_seed)
            quantized.update({f"{module}.{part}": t for part, t in tensors.items()})
        else:
            quantized[name] = floats[name] = tensor
    twin = write_hf_checkpoint(path / "float", config, state_dict=floats)
    quantized_config = copy.deepcopy(config)
    quantized_config.quantization_config = spec.quantization_config()
    folder = write_hf_checkpoint(path / "quantized", quantized_config, state_dict=quantized)
    return folder, twin
