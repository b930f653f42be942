"""Which logits rows a step samples from (and which hidden-state rows embeddings pool), and the
per-row sampling settings as tensors."""
from dataclasses import dataclass, field

import torch

from inference_engine.pooling_params import PoolingParams
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup


@dataclass
class SampleRow:
    """One logits row to sample from, with what sampling reads of its sequence: `num_samples`
    tokens (best_of on a first prefill). With speculative decoding a sequence has one row per
    checked position, in order: `draft` is the draft token the row checks, -1 on its last row
    (none to check); None elsewhere."""
    params: SamplingParams
    # The sequence's own lists (not copies): read when the step samples, on the host.
    prompt_token_ids: list[int]
    output_token_ids: list[int]
    num_pending: int = 0  # its tokens still on the device, which come before this one
    grammar: object | None = None  # its structured output's matcher (xgrammar's)
    generator: torch.Generator | None = None  # a seeded request's random stream
    num_samples: int = 1
    draft: int | None = None

    @property
    def in_min_tokens(self) -> bool:
        """Stop tokens are still banned (tokens in flight come before this one too)."""
        return len(self.output_token_ids) + self.num_pending < self.params.min_tokens


@dataclass
class PromptLogprobRows:
    """Rows start..start+len(prompt_token_ids)-2 predict prompt tokens 1..; `top`: how many of
    the most likely tokens each reports besides the prompt's."""
    prompt_token_ids: list[int]
    top: int
    start: int


@dataclass
class PoolingChunk:
    """An embedding request's prompt tokens in one step (all of them, or a chunk): rows
    start..end-1 of the step's hidden states are those its pooling reads (maybe none). `first`:
    the chunk starts the prompt's prefill since admission (a recomputed prompt pools anew);
    `last`: it ends the prompt, and the embedding is due."""
    group: SequenceGroup
    seq: Sequence
    start: int
    end: int
    first: bool
    last: bool


@dataclass
class SamplingMetadata:
    rows: list[SampleRow] = field(default_factory=list)
    sample_indices: list[int] = field(default_factory=list)  # logits row of each SampleRow
    prompt_rows: list[PromptLogprobRows] = field(default_factory=list)
    # Embedding requests' rows to pool (layers/pooler.py); the chunks that end their prompts
    # come in the order of those requests' SampleRows.
    pooling_chunks: list[PoolingChunk] = field(default_factory=list)
    # Per row: the embedding request's pooling (it finishes the pooled state), else None.
    pooling: list[PoolingParams | None] | None = None
    # Async scheduling, with penalties: each row's sequence's token in flight (still only on
    # the device), which the penalties count as output: its index among the last step's samples
    # (-1 where none), and [R] the tokens themselves, read there on the device.
    pending_index: list[int] | None = None
    pending_tokens: torch.Tensor | None = None


def device_tensor(values, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`values` as a tensor on `device`, copied without waiting for the device: a blocking copy
    would wait for every kernel queued, the running step's too (see engine/step_in_flight.py)."""
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


@dataclass
class SamplingTensors:
    """Per-row knobs, [R] each; token masks [R, V] only when some row uses penalties."""
    temperature: torch.Tensor
    top_p: torch.Tensor
    top_k: torch.Tensor
    min_p: torch.Tensor
    presence: torch.Tensor
    frequency: torch.Tensor
    repetition: torch.Tensor
    output_counts: torch.Tensor | None
    prompt_mask: torch.Tensor | None
    do_top_p_top_k: bool
    do_min_p: bool

    @classmethod
    def build(cls, rows: list[SampleRow], vocab_size: int, device: torch.device,
              pending_tokens: torch.Tensor | None = None) -> "SamplingTensors":
        params = [row.params for row in rows]

        def col(values, dtype=torch.float32):
            return device_tensor(values, dtype, device)

        temperature = col([p.temperature if p.temperature > 0 else 1.0 for p in params])
        top_k = col([p.top_k if p.top_k > 0 else vocab_size for p in params], torch.int64)
        counts = mask = None
        if any(p.needs_penalties for p in params):
            counts = _token_counts([row.output_token_ids for row in rows], vocab_size, device,
                                   pending_tokens)
            mask = _token_counts([row.prompt_token_ids for row in rows], vocab_size, device) > 0
        return cls(
            temperature=temperature, top_p=col([p.top_p for p in params]), top_k=top_k,
            min_p=col([p.min_p for p in params]), presence=col([p.presence_penalty for p in params]),
            frequency=col([p.frequency_penalty for p in params]),
            repetition=col([p.repetition_penalty for p in params]),
            output_counts=counts, prompt_mask=mask,
            do_top_p_top_k=any(p.top_p < 1.0 or p.top_k > 0 for p in params),
            do_min_p=any(p.min_p > 0 for p in params))


def _token_counts(token_lists: list[list[int]], vocab_size: int, device: torch.device,
                  extra: torch.Tensor | None = None) -> torch.Tensor:
    """[R, V] int32, how often each token occurs in each row's list (plus `extra`, [R] on the
    device, one more token per row; -1 for none). Counted on the device: only the token ids
    travel, not the [R, V] table (a quarter of a gigabyte for 256 rows of a 128k vocabulary)."""
    width = max((len(t) for t in token_lists), default=0)
    padded = torch.full((len(token_lists), width + 1), vocab_size, dtype=torch.int64)
    for i, tokens in enumerate(token_lists):
        padded[i, :len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
    padded = padded.to(device, non_blocking=True)
    if extra is not None:  # none: the spare column
        padded = torch.cat([padded, torch.where(extra < 0, vocab_size, extra)[:, None]], dim=1)
    counts = torch.zeros(len(token_lists), vocab_size + 1, dtype=torch.int32, device=device)
    counts.scatter_add_(1, padded, torch.ones_like(padded, dtype=torch.int32))
    return counts[:, :vocab_size]
