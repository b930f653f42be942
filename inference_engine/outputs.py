"""What the engine returns to callers: one RequestOutput per request and step.

A RequestOutput normally carries the request's whole state, which is what the offline API
returns. A server streaming hundreds of requests needs only what each step added: copying every
sequence's token list on every step costs time quadratic in the output length, paid while the
engine waits. `OutputCursor` builds those delta outputs (or a single final one) instead.
"""
import enum
from dataclasses import dataclass

from inference_engine.sequence import Logprob, RequestMetrics, SequenceGroup


class RequestOutputKind(enum.Enum):
    """What each output of a request carries."""
    CUMULATIVE = enum.auto()  # the whole state, after every step that added tokens
    DELTA = enum.auto()       # only the tokens, log-probabilities and text new since the last
    FINAL_ONLY = enum.auto()  # one output, the whole result, when the request finishes


@dataclass
class CompletionOutput:
    """One completion of a request."""
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestOutput:
    """A request's state after a step: its prompt and the completions so far (in a DELTA
    output: the completions with something new, holding only what is new)."""
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput]
    finished: bool
    metrics: RequestMetrics | None = None
    embedding: list[float] | None = None  # an embedding request's result (no completions)
    num_cached_tokens: int = 0  # prompt tokens found in the prefix cache (not computed)

    @classmethod
    def from_seq_group(cls, group: SequenceGroup) -> "RequestOutput":
        params = group.sampling_params
        seqs = group.get_seqs()
        if params.best_of > params.n:
            # The n best of best_of by cumulative log-probability (vLLM's rule for sampling).
            seqs = sorted(seqs, key=lambda s: s.cumulative_logprob, reverse=True)[:params.n]
        finished = group.is_finished
        outputs = []
        for i, seq in enumerate(sorted(seqs, key=lambda s: s.index) if params.best_of == params.n
                                else seqs):
            text = seq.detokenizer.text(seq.is_finished) if seq.detokenizer else ""
            outputs.append(CompletionOutput(
                index=i, text=text, token_ids=list(seq.output_token_ids),
                cumulative_logprob=seq.cumulative_logprob,
                logprobs=list(seq.output_logprobs) if params.logprobs is not None else None,
                finish_reason=seq.status.finish_reason, stop_reason=seq.stop_reason))
        if group.pooling_params is not None:
            outputs = []
        return cls(group.request_id, group.prompt, group.prompt_token_ids, group.prompt_logprobs,
                   outputs, finished, group.metrics, group.embedding, group.num_cached_tokens)


@dataclass
class EmbeddingOutput:
    embedding: list[float]


@dataclass
class EmbeddingRequestOutput:
    """An embedding request's result, as LLM.embed returns it (vLLM's shape)."""
    request_id: str
    prompt_token_ids: list[int]
    outputs: EmbeddingOutput
    finished: bool = True

    @classmethod
    def from_output(cls, output: RequestOutput) -> "EmbeddingRequestOutput":
        return cls(output.request_id, output.prompt_token_ids, EmbeddingOutput(output.embedding))


_DONE = (-1, -1)  # what was sent of a completion whose finish has been sent


class OutputCursor:
    """The outputs of one request in the kind asked for, built from the live SequenceGroup.

    Call `next` between engine steps, never during one (a step changes the group). A delta
    output lists only the completions that got tokens or finished since the previous output,
    each holding just the new tokens, log-probabilities and text; concatenated, the deltas
    equal the cumulative output. With `best_of > n` the best completions are known only at the
    end, so the deltas are one final output holding everything.
    """

    def __init__(self, group: SequenceGroup, kind: RequestOutputKind):
        self.group = group
        self.kind = kind
        self._num_tokens = 0  # output tokens of all sequences at the last cumulative output
        self._sent: dict[int, tuple[int, int]] = {}  # completion index -> tokens, chars sent

    def next(self, final: RequestOutput | None = None) -> RequestOutput | None:
        """The output due after a step, or None when there is nothing new. `final` is the
        engine's (cumulative) output if the request finished in that step."""
        if self.kind is RequestOutputKind.FINAL_ONLY:
            return final
        if self.kind is RequestOutputKind.CUMULATIVE:
            if final is not None:
                return final
            num_tokens = sum(len(seq.output_token_ids) for seq in self.group.seqs)
            if num_tokens == self._num_tokens:
                return None  # not scheduled in this step
            self._num_tokens = num_tokens
            return RequestOutput.from_seq_group(self.group)
        if final is not None:
            completions = []
            for c in final.outputs:
                sent = self._sent.get(c.index, (0, 0))
                if sent is not _DONE:
                    completions.append(self._cut(c.index, sent, c.token_ids, c.text, c.logprobs,
                                                 c.cumulative_logprob, c.finish_reason,
                                                 c.stop_reason))
            return RequestOutput(final.request_id, final.prompt, final.prompt_token_ids,
                                 final.prompt_logprobs, completions, True, final.metrics,
                                 num_cached_tokens=final.num_cached_tokens)
        group = self.group
        if group.sampling_params.best_of > group.sampling_params.n:
            return None
        completions = []
        for seq in group.seqs:
            # Checked before decoding any text: most sequences end here.
            finish_reason = seq.status.finish_reason
            sent = self._sent.get(seq.index, (0, 0))
            if sent is _DONE or (len(seq.output_token_ids) == sent[0] and finish_reason is None):
                continue
            text = seq.detokenizer.text(finish_reason is not None) if seq.detokenizer else ""
            logprobs = seq.output_logprobs if group.sampling_params.logprobs is not None else None
            completions.append(self._cut(seq.index, sent, seq.output_token_ids, text, logprobs,
                                         seq.cumulative_logprob, finish_reason, seq.stop_reason))
        if not completions:
            return None
        return RequestOutput(group.request_id, group.prompt, group.prompt_token_ids,
                             group.prompt_logprobs, completions, False, group.metrics,
                             num_cached_tokens=group.num_cached_tokens)

    def _cut(self, index: int, sent: tuple[int, int], token_ids: list[int], text: str,
             logprobs: list[dict[int, Logprob]] | None, cumulative_logprob: float | None,
             finish_reason: str | None, stop_reason: int | str | None) -> CompletionOutput:
        """Completion `index` past the `sent` tokens and characters; records what it sends."""
        num_tokens, num_chars = sent
        self._sent[index] = _DONE if finish_reason is not None else (len(token_ids), len(text))
        return CompletionOutput(
            index, text[num_chars:], token_ids[num_tokens:], cumulative_logprob,
            logprobs[num_tokens:] if logprobs is not None else None, finish_reason, stop_reason)
