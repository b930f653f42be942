"""Shared parameters of the op tests: devices, dtypes and per-dtype tolerances.

Every test compares a compiled (or Triton) kernel with the plain-PyTorch reference on fresh random
inputs. CPU runs in CI; "cuda" cases carry the gpu marker and run on the GPU machine (CUDA or ROCm).
"""
import pytest
import torch

from inference_engine.ops._dispatch import has_compiled

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16"),
          pytest.param(torch.bfloat16, id="bf16")]
# One rounding of the output dtype, plus float32 accumulation-order differences.
TOLERANCES = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}


def require_compiled(op_name: str, device: str) -> None:
    """Fails (not skips) when the extension lacks the op: CI must build it."""
    assert has_compiled(op_name, device), (
        f"torch.ops.inference_engine.{op_name} has no {device} kernel: build the extension with "
        "`pip install --no-build-isolation -e .`")


def fused_qkv_view(query: torch.Tensor, num_kv_heads: int) -> torch.Tensor:
    """query's values as the model hands them over: the first columns of the fused qkv
    projection's output, rows (num_heads + 2 * num_kv_heads) * head_size apart."""
    num_seqs, num_heads, head_size = query.shape
    qkv = torch.randn(num_seqs, (num_heads + 2 * num_kv_heads) * head_size, dtype=query.dtype,
                      device=query.device)
    view = qkv[:, :num_heads * head_size].view(num_seqs, num_heads, head_size)
    view.copy_(query)
    return view


def context_slots(block_tables: torch.Tensor, seq_lens: torch.Tensor, block_size: int):
    """Where every context token lies in a paged cache: (cache block, slot, position in its
    sequence) index tensors, sequence after sequence, on block_tables' device."""
    lens = seq_lens.long().cpu()
    seqs = torch.repeat_interleave(torch.arange(len(lens)), lens)
    positions = torch.cat([torch.arange(n) for n in lens.tolist()])
    blocks = block_tables.long().cpu()[seqs, positions // block_size]
    device = block_tables.device
    return blocks.to(device), (positions % block_size).to(device), positions.to(device)
