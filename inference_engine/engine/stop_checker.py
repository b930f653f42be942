"""Decides after each new token whether a sequence is finished, and why."""
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceStatus


class StopChecker:
    def __init__(self, max_model_len: int, eos_token_id: int | None):
        self.max_model_len = max_model_len
        self.eos_token_id = eos_token_id

    def check_token(self, seq: Sequence, params: SamplingParams) -> bool:
        """Stops on a stop token (EOS unless ignored, or one of stop_token_ids) once min_tokens
        are out. Called before the token's text is added, so a stop token's text stays out."""
        token = seq.output_token_ids[-1]
        if len(seq.output_token_ids) < params.min_tokens:
            return False
        if token in params.stop_token_ids:
            seq.status, seq.stop_reason = SequenceStatus.FINISHED_STOPPED, token
            return True
        if token == self.eos_token_id and not params.ignore_eos:
            seq.status = SequenceStatus.FINISHED_STOPPED
            return True
        return False

    def check_length(self, seq: Sequence, params: SamplingParams) -> bool:
        if ((params.max_tokens is not None and len(seq.output_token_ids) >= params.max_tokens)
                or len(seq) >= self.max_model_len):
            seq.status = SequenceStatus.FINISHED_LENGTH_CAPPED
            return True
        return False
