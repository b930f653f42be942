"""What the engine returns to callers: one RequestOutput per request and step."""
from dataclasses import dataclass

from inference_engine.sequence import Logprob, RequestMetrics, SequenceGroup


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
    """A request's state after a step: its prompt and the completions so far."""
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput]
    finished: bool
    metrics: RequestMetrics | None = None

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
        return cls(group.request_id, group.prompt, group.prompt_token_ids, group.prompt_logprobs,
                   outputs, finished, group.metrics)
