"""Per-step attention metadata, set by the model runner around each forward pass, and the hook
that splits a forward pass into CUDA graph pieces at its attention calls.

The attention layers read both from here rather than through every forward signature, which
keeps the model code identical for prefill, decode and CUDA-graph capture and replay.
"""
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class AttentionMetadata:
    """Where this step's tokens sit in the paged cache.

    Sequences come prefills first. Sequence i < num_prefills brings the
    query_start_loc[i+1] - query_start_loc[i] new tokens that end its seq_lens[i] tokens; every
    later sequence is a decode bringing exactly one. Tokens are laid out the same way: the
    num_prefill_tokens prefill tokens, then one per decode.
    slot_mapping [num_tokens]: cache slot of each new token (-1: padding, not stored).
    block_tables [num_seqs, max_blocks] int32; seq_lens [num_seqs] int32;
    query_start_loc [num_prefills + 1] int32 (None without prefills).
    """
    slot_mapping: torch.Tensor
    block_tables: torch.Tensor
    seq_lens: torch.Tensor
    num_prefills: int = 0
    num_prefill_tokens: int = 0
    query_start_loc: torch.Tensor | None = None
    max_seq_len: int = 0
    max_query_len: int = 0

    @property
    def is_decode_only(self) -> bool:
        return self.num_prefills == 0


_current: AttentionMetadata | None = None


def get_attention_metadata() -> AttentionMetadata:
    if _current is None:
        raise RuntimeError("attention metadata is only set inside a model-runner forward pass")
    return _current


@contextmanager
def set_attention_metadata(metadata: AttentionMetadata):
    global _current
    previous, _current = _current, metadata
    try:
        yield
    finally:
        _current = previous


# (attention module, q, k, v, positions) -> attention output; set while a piecewise CUDA graph is
# captured.
GraphSplit = Callable[..., torch.Tensor]
_graph_split: GraphSplit | None = None


def get_graph_split() -> GraphSplit | None:
    return _graph_split


@contextmanager
def set_graph_split(split: GraphSplit):
    """While set, every attention call returns split(attention, q, k, v, positions) instead of
    attending: the capture ends its graph there and begins the next."""
    global _graph_split
    previous, _graph_split = _graph_split, split
    try:
        yield
    finally:
        _graph_split = previous
