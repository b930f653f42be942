"""CUDA graphs for steps that carry prompts: the model captured in pieces between its attention
calls, one set of pieces per padded token count; attention runs eagerly between them.

A step with prompts cannot replay a whole-model graph, since its attention depends on how many
prompts it holds and how long they are. Everything else (embedding, projections, norms, rotary,
MLP) depends only on the number of tokens, so it is captured per padded token count, one graph
per stretch between two attention calls. A replay copies the inputs in, then replays piece 0,
runs attention 0 on the real tokens, replays piece 1, and so on. The host launches a few kernels
per layer rather than every one of them, which an eager step of a few hundred tokens otherwise
spends longer on than the GPU spends computing it (vLLM's "piecewise" graphs do the same, through
torch.compile).
"""
from dataclasses import dataclass

import torch
from torch import nn

from inference_engine.model_executor.forward_context import (AttentionMetadata,
                                                             set_attention_metadata,
                                                             set_graph_split)
from inference_engine.worker.cuda_graph import capture_sizes, padded_size


def borrowed(t: torch.Tensor) -> torch.Tensor:
    """A view of t's memory that does not keep it allocated.

    The tensors that pass between pieces live in the graphs' memory pool. Holding them would
    keep every capture size's hand-offs allocated at once; borrowed views let the pool reuse the
    memory for the next size, which is safe because only one size's pieces run in a step, in the
    order they were captured, and inside one size the allocator kept the hand-offs apart.
    """
    int_types = {1: "|i1", 2: "<i2", 4: "<i4", 8: "<i8"}
    size = t.element_size()
    interface = {"shape": tuple(t.shape), "strides": tuple(s * size for s in t.stride()),
                 "typestr": int_types[size], "data": (t.data_ptr(), False), "version": 3}
    holder = type("_Interface", (), {"__cuda_array_interface__": interface})()
    return torch.as_tensor(holder, device=t.device).view(t.dtype)


def can_borrow(device: torch.device) -> bool:
    """Whether this torch build wraps device memory without copying it (through the CUDA array
    interface). The pieces need it: without it they would keep every size's hand-offs."""
    t = torch.arange(4, device=device)
    try:
        b = borrowed(t)
    except (RuntimeError, TypeError, ValueError):
        return False
    return b.device == t.device and b.data_ptr() == t.data_ptr()


@dataclass
class _AttentionCall:
    """One attention call between two pieces: its module and the pieces' hand-off tensors."""
    attention: nn.Module
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    positions: torch.Tensor | None  # with rotary embeddings, applied in the attention call
    out: torch.Tensor


class _PieceCapture:
    """Captures the model forward as it runs, ending one graph and beginning the next at each
    attention call (installed as the forward context's graph split)."""

    def __init__(self, pool):
        self.pool = pool
        self.graphs: list[torch.cuda.CUDAGraph] = []
        self.calls: list[_AttentionCall] = []
        self._begin()

    def _begin(self) -> None:
        self.graphs.append(torch.cuda.CUDAGraph())
        self.graphs[-1].capture_begin(pool=self.pool)

    def split(self, attention: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              positions: torch.Tensor | None = None) -> torch.Tensor:
        # Allocated inside the capture, so from the pool; the eager attention writes it at replay.
        out = torch.empty(q.shape[0], attention.num_heads * attention.head_size,
                          dtype=q.dtype, device=q.device)
        self.graphs[-1].capture_end()
        self.calls.append(_AttentionCall(attention, q, k, v, positions, out))
        self._begin()
        return out

    def finish(self) -> tuple[list[torch.cuda.CUDAGraph], list[_AttentionCall]]:
        self.graphs[-1].capture_end()
        calls = [_AttentionCall(c.attention, borrowed(c.q), borrowed(c.k), borrowed(c.v),
                                None if c.positions is None else borrowed(c.positions),
                                borrowed(c.out)) for c in self.calls]
        return self.graphs, calls


class PiecewiseCUDAGraphRunner:
    """Runs `model(input_ids, positions)` for steps of up to max_tokens tokens of any mix of
    prompts and decodes through graphs captured in pieces."""

    def __init__(self, model: nn.Module, max_tokens: int, hidden_size: int, dtype: torch.dtype,
                 device: torch.device):
        self.model = model
        self.sizes = capture_sizes(max_tokens)
        n = self.sizes[-1]
        self.input_ids = torch.zeros(n, dtype=torch.int64, device=device)
        self.positions = torch.zeros(n, dtype=torch.int64, device=device)
        self.hidden = torch.zeros(n, hidden_size, dtype=dtype, device=device)
        self.pieces: dict[int, tuple[list[torch.cuda.CUDAGraph], list[_AttentionCall]]] = {}

    def _warm_up_metadata(self, num_tokens: int) -> AttentionMetadata:
        """Every token a one-token decode that stores nothing, for the eager warm-up run."""
        device = self.input_ids.device
        return AttentionMetadata(
            torch.full((num_tokens,), -1, dtype=torch.int64, device=device),
            torch.zeros(num_tokens, 1, dtype=torch.int32, device=device),
            torch.ones(num_tokens, dtype=torch.int32, device=device), max_query_len=1,
            max_seq_len=1)

    @torch.inference_mode()
    def capture(self, pool) -> None:
        """Captures every size, largest first, into the graph memory pool `pool`."""
        stream = torch.cuda.Stream(self.input_ids.device)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for n in reversed(self.sizes):
                with set_attention_metadata(self._warm_up_metadata(n)):  # cuBLAS, allocator
                    self.hidden[:n] = self.model(self.input_ids[:n], self.positions[:n])
                stream.synchronize()
                capture = _PieceCapture(pool)
                with set_graph_split(capture.split):
                    self.hidden[:n] = self.model(self.input_ids[:n], self.positions[:n])
                self.pieces[n] = capture.finish()
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()

    def can_run(self, num_tokens: int) -> bool:
        return num_tokens <= self.sizes[-1]

    def run(self, input_ids: torch.Tensor, positions: torch.Tensor,
            meta: AttentionMetadata) -> torch.Tensor:
        t = input_ids.shape[0]
        graphs, calls = self.pieces[padded_size(self.sizes, t)]
        self.input_ids[:t] = input_ids  # the padding rows keep earlier, valid ids and positions
        self.positions[:t] = positions
        with set_attention_metadata(meta):
            for graph, call in zip(graphs, calls):
                graph.replay()
                positions = None if call.positions is None else call.positions[:t]
                call.attention.forward(call.q[:t], call.k[:t], call.v[:t], positions,
                                       out=call.out[:t])
        graphs[-1].replay()
        return self.hidden[:t]
