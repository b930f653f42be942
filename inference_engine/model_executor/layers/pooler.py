"""Embeddings from a step's final hidden states (after the final norm), by the request's
PoolingType: the last prompt token's state, the mean over the prompt, or the first token's.

Each embedding request's chunk contributes the sum of the rows its pooling reads. A prompt
computed over several steps (chunked prefill) keeps its running sum on its sequence, on the
device, so no step waits for the host; the step with its last token divides (MEAN) and returns it.
"""
import numpy as np
import torch

from inference_engine.pooling_params import PoolingType
from inference_engine.sample.metadata import PoolingChunk, device_tensor
from inference_engine.sequence import Sequence, SequenceGroup


def pooling_chunk(group: SequenceGroup, seq: Sequence, start: int, end: int,
                  offset: int) -> PoolingChunk | None:
    """The chunk of an embedding request whose prompt tokens start..end-1 are rows offset.. of
    the step; None when the step neither reads, starts nor ends its pooling (a middle chunk of
    a LAST or CLS prompt)."""
    prompt_len = len(seq.prompt_token_ids)
    first, last = start == seq.num_cached_tokens, end == prompt_len
    lo, hi = group.pooling_type.token_range(start, end, prompt_len)
    if lo == hi and not (first or last):
        return None
    return PoolingChunk(group, seq, offset + lo - start, offset + hi - start, first, last)


def pool(hidden: torch.Tensor, chunks: list[PoolingChunk]) -> torch.Tensor | None:
    """[F, H] float32: the pooled states of the chunks that end their prompts, in order (the
    other chunks' sums stay on their sequences for the steps that compute the rest)."""
    if not chunks:
        return None
    sums = _row_sums(hidden, chunks)
    due = [c for c in chunks if c.last]
    if all(c.first and c.last for c in chunks):  # whole prompts: the usual case
        pooled = sums
    else:
        totals = []
        for i, c in enumerate(chunks):
            total = sums[i] if c.first else c.seq.pooled_so_far + sums[i]
            c.seq.pooled_so_far = None if c.last else total
            if c.last:
                totals.append(total)
        if not totals:
            return None
        pooled = torch.stack(totals)
    if any(c.group.pooling_type is PoolingType.MEAN for c in due):
        scale = [1.0 / len(c.seq.prompt_token_ids) if c.group.pooling_type is PoolingType.MEAN
                 else 1.0 for c in due]
        pooled = pooled * device_tensor(scale, torch.float32, pooled.device)[:, None]
    return pooled


def _row_sums(hidden: torch.Tensor, chunks: list[PoolingChunk]) -> torch.Tensor:
    """[C, H] float32: each chunk's sum of its rows (zero for none)."""
    lengths = np.array([c.end - c.start for c in chunks])
    rows = np.concatenate([np.arange(c.start, c.end) for c in chunks])
    index = device_tensor(rows, torch.int64, hidden.device)
    if (lengths == 1).all():  # LAST, CLS: one row each, no sum
        return hidden[index].float()
    segment = device_tensor(np.repeat(np.arange(len(chunks)), lengths), torch.int64, hidden.device)
    sums = torch.zeros(len(chunks), hidden.shape[-1], dtype=torch.float32, device=hidden.device)
    return sums.index_add_(0, segment, hidden[index].float())
