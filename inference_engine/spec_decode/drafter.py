"""The scheduler's side of speculative decoding: which running sequences get drafts this step,
and how many, within their limits and the step's token budget."""
from inference_engine.sequence import Sequence, SequenceGroup
from inference_engine.spec_decode.config import SpeculativeConfig
from inference_engine.spec_decode.ngram_proposer import NgramProposer


def takes_drafts(group: SequenceGroup, seq: Sequence) -> bool:
    """Whether a sequence's next tokens may be checked several at once. Not when what the
    sampler does to a position depends on the tokens before it in the same step (penalties,
    bad words, a grammar, min_tokens still holding back the stop tokens) or when a token is
    still on the device (async scheduling); not for embedding requests."""
    p = group.sampling_params
    return (not p.needs_penalties and not p.restricts_tokens and seq.grammar is None
            and len(seq.output_token_ids) >= p.min_tokens and not seq.num_pending
            and group.pooling_params is None)


class Drafter:
    def __init__(self, config: SpeculativeConfig, max_model_len: int):
        self.proposer = NgramProposer(config)
        self.max_model_len = max_model_len
        self.disable_by_batch_size = config.disable_by_batch_size

    def enabled(self, num_running: int) -> bool:
        """Whether a step with `num_running` requests drafts at all."""
        return self.disable_by_batch_size is None or num_running < self.disable_by_batch_size

    def drafts(self, group: SequenceGroup, seqs: list[Sequence], budget: int
               ) -> dict[int, list[int]]:
        """{seq_id: draft tokens} for the group's decoding sequences that get any, with at most
        `budget` draft tokens in all. A step gives a sequence its drafts that hold plus one
        token, so drafts stop one short of max_tokens and of max_model_len."""
        out = {}
        max_tokens = group.sampling_params.max_tokens
        for seq in seqs:
            if budget <= 0 or not takes_drafts(group, seq):
                continue
            room = self.max_model_len - len(seq) - 1
            if max_tokens is not None:
                room = min(room, max_tokens - len(seq.output_token_ids) - 1)
            drafts = self.proposer.propose(seq.token_ids, min(room, budget))
            if drafts:
                out[seq.seq_id] = drafts
                budget -= len(drafts)
        return out
