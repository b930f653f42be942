"""What one sampled token does to its sequence: appended with its log-probabilities (their
tokens' text decoded), the sequence's grammar advanced, then the stop checks in order: a stop
token, a grammar that has ended, a stop string in the new text, the length."""
from inference_engine.engine.detokenizer import decode_token
from inference_engine.engine.stop_checker import StopChecker
from inference_engine.sample.device_samples import Sample
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Logprob, Sequence, SequenceStatus
from inference_engine.structured_output.manager import StructuredOutputManager


class TokenAppender:
    def __init__(self, stop_checker: StopChecker, structured_outputs: StructuredOutputManager,
                 tokenizer):
        self.stop_checker = stop_checker
        self.structured_outputs = structured_outputs
        self.tokenizer = tokenizer

    def append(self, seq: Sequence, params: SamplingParams, sample: Sample) -> None:
        seq.append_token(sample.token_id, sample.logprob, self.decode_logprobs(sample.top_logprobs))
        if seq.grammar is not None and not self.structured_outputs.accept(seq, sample.token_id):
            return
        if self.stop_checker.check_token(seq, params):
            if seq.detokenizer is not None and params.include_stop_str_in_output:
                seq.detokenizer.add_token(sample.token_id, check_stop=False)
            return
        if seq.grammar is not None and seq.grammar.is_terminated():
            # Its stop token, which ignore_eos let through: a finished grammar has no next mask.
            seq.status = SequenceStatus.FINISHED_STOPPED
            return
        if seq.detokenizer is not None:
            at_min = len(seq.output_token_ids) >= params.min_tokens
            matched = seq.detokenizer.add_token(sample.token_id, check_stop=at_min)
            if matched is not None:
                seq.status, seq.stop_reason = SequenceStatus.FINISHED_STOPPED, matched
                return
        self.stop_checker.check_length(seq, params)

    def decode_logprobs(self, entries: dict[int, Logprob] | None) -> dict[int, Logprob] | None:
        """The entries with each token's text (for the API's `logprobs`)."""
        if entries is None or self.tokenizer is None:
            return entries
        for token_id, lp in entries.items():
            lp.decoded_token = decode_token(self.tokenizer, token_id)
        return entries
