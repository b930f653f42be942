"""Sequences (one completion each) and sequence groups (one request: its n / best_of copies)."""
import enum
import time
from dataclasses import dataclass, field

import torch

from inference_engine.sampling_params import SamplingParams


class SequenceStatus(enum.Enum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    FINISHED_STOPPED = enum.auto()
    FINISHED_LENGTH_CAPPED = enum.auto()
    FINISHED_ABORTED = enum.auto()
    FINISHED_IGNORED = enum.auto()

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED  # a set lookup: this runs for every sequence every step

    @property
    def finish_reason(self) -> str | None:
        return _FINISH_REASONS.get(self)


_FINISHED = frozenset({SequenceStatus.FINISHED_STOPPED, SequenceStatus.FINISHED_LENGTH_CAPPED,
                       SequenceStatus.FINISHED_ABORTED, SequenceStatus.FINISHED_IGNORED})
_FINISH_REASONS = {
    SequenceStatus.FINISHED_STOPPED: "stop",
    SequenceStatus.FINISHED_LENGTH_CAPPED: "length",
    SequenceStatus.FINISHED_ABORTED: "abort",
    SequenceStatus.FINISHED_IGNORED: "length",
}


@dataclass
class Logprob:
    """A token's log-probability, its rank in the distribution (1 = most likely) and its text."""
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class Sequence:
    """One completion: the prompt tokens (shared with its siblings), its own output tokens, and
    the paged-cache blocks that hold its keys and values."""

    def __init__(self, seq_id: int, prompt_token_ids: list[int], index: int = 0):
        self.seq_id = seq_id
        self.index = index  # position among the request's completions
        self.prompt_token_ids = prompt_token_ids
        self.output_token_ids: list[int] = []
        self.output_logprobs: list[dict[int, Logprob]] = []
        self.cumulative_logprob = 0.0
        self.status = SequenceStatus.WAITING
        self.stop_reason: int | str | None = None
        self.block_table: list[int] = []
        # Leading tokens whose keys and values a cached prefix held when the sequence was
        # admitted: its prefill computes only the rest (core/prefix_cache.py).
        self.num_cached_tokens = 0
        # Its prefill since admission: the tokens it computes before it samples (all it had
        # then), and those computed or scheduled so far (chunked prefill takes several steps).
        self.num_prefill_tokens = 0
        self.num_computed_tokens = 0
        self.block_keys: list[bytes] = []  # prefix keys of its full blocks computed so far
        # Mixed into its first block's key: sequences of different LoRA adapters compute
        # different keys and values for the same tokens, so they never share cached blocks.
        self.cache_salt = b""
        self.detokenizer = None  # set by the engine when the request detokenizes
        # With structured outputs: the sequence's grammar state (an xgrammar GrammarMatcher,
        # set by the engine), which has accepted every output token.
        self.grammar = None
        # Tokens sampled on the device whose ids the host has not read yet (async scheduling):
        # they are not in output_token_ids, but the cache and the next step count them.
        self.num_pending = 0
        # An embedding request's prompt computed over several steps: the sum its pooling read
        # in the steps so far (layers/pooler.py), on the device.
        self.pooled_so_far: torch.Tensor | None = None

    def __len__(self) -> int:
        """The tokens whose ids the host knows (see num_pending for those it does not yet)."""
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    @property
    def last_token_id(self) -> int:
        return self.output_token_ids[-1] if self.output_token_ids else self.prompt_token_ids[-1]

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def is_prefilling(self) -> bool:
        """True while chunks of its prefill are still to be scheduled."""
        return self.num_computed_tokens < self.num_prefill_tokens

    def append_token(self, token_id: int, logprob: float,
                     logprobs: dict[int, Logprob] | None = None) -> None:
        self.output_token_ids.append(token_id)
        self.cumulative_logprob += logprob
        if logprobs is not None:
            self.output_logprobs.append(logprobs)

    def fork(self, seq_id: int, index: int) -> "Sequence":
        """A copy sharing the prompt; the caller shares the cache blocks through the block manager."""
        child = Sequence(seq_id, self.prompt_token_ids, index)
        child.output_token_ids = list(self.output_token_ids)
        child.output_logprobs = list(self.output_logprobs)
        child.cumulative_logprob = self.cumulative_logprob
        child.status = self.status
        child.block_table = list(self.block_table)
        child.block_keys = list(self.block_keys)
        child.cache_salt = self.cache_salt
        child.grammar = self.grammar.fork() if self.grammar is not None else None
        return child


@dataclass
class RequestMetrics:
    """Wall-clock times of one request's life, for latency metrics, and once it has finished,
    its tokens per returned completion and why it finished (whatever its outputs carry)."""
    arrival_time: float = field(default_factory=time.time)
    first_scheduled_time: float | None = None
    first_token_time: float | None = None
    last_token_time: float | None = None
    finished_time: float | None = None
    num_output_tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None


class SequenceGroup:
    """One request: a prompt and the sequences sampled from it (one until the first token is
    sampled, then `best_of`)."""

    def __init__(self, request_id: str, prompt: str | None, prompt_token_ids: list[int],
                 sampling_params: SamplingParams, first_seq: Sequence,
                 arrival_time: float | None = None, generator: torch.Generator | None = None,
                 priority: int = 0):
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.sampling_params = sampling_params
        self.seqs = [first_seq]
        self.metrics = RequestMetrics(arrival_time=arrival_time or time.time())
        self.generator = generator  # per-request RNG when a seed is given
        self.prompt_logprobs: list[dict[int, Logprob] | None] | None = None
        self.num_preemptions = 0
        self.priority = priority  # lower first, with the `priority` scheduling policy
        self.pooling_params = None  # an embedding request's (pooling_params.PoolingParams)
        self.pooling_type = None  # and how its prompt's hidden states pool (the model's)
        self.embedding: list[float] | None = None  # its result
        self.lora_request = None  # the LoRA adapter it runs with (lora.LoRARequest), if any
        self.output_cursor = None  # what its outputs carry (outputs.OutputCursor), the engine's

    @property
    def lora_int_id(self) -> int:
        """Its adapter's id; 0 for the base model."""
        return self.lora_request.lora_int_id if self.lora_request is not None else 0

    def get_seqs(self, status: SequenceStatus | None = None) -> list[Sequence]:
        if status is None:
            return list(self.seqs)
        return [seq for seq in self.seqs if seq.status == status]

    def unfinished_seqs(self) -> list[Sequence]:
        return [seq for seq in self.seqs if not seq.is_finished]

    @property
    def is_finished(self) -> bool:
        return all(seq.is_finished for seq in self.seqs)

    @property
    def num_cached_tokens(self) -> int:
        """Prompt tokens the prefix cache held when the request's first sequence was admitted."""
        return self.seqs[0].num_cached_tokens

    @property
    def is_first_prefill(self) -> bool:
        """True until the request's first token is sampled: then `best_of` copies are forked."""
        return len(self.seqs) == 1 and not self.seqs[0].output_token_ids

    @property
    def wants_prompt_logprobs(self) -> bool:
        return self.sampling_params.prompt_logprobs is not None and self.prompt_logprobs is None

    @property
    def reads_every_prompt_token(self) -> bool:
        """True when the request needs each prompt token computed by its own steps: prompt
        logprobs, or an embedding pooled from more than the last token (MEAN, CLS)."""
        return self.wants_prompt_logprobs or (self.pooling_type is not None
                                              and self.pooling_type.reads_every_prompt_token)
