"""The engine's side of structured outputs: each constrained sequence gets its matcher at
add_request and feeds it every token it samples."""
import logging
import threading

from inference_engine.errors import SamplingParamsError
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceStatus

logger = logging.getLogger(__name__)


class StructuredOutputManager:
    def __init__(self, tokenizer, vocab_size: int, eos_token_id: int | None):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_token_id = eos_token_id
        self._backend = None  # xgrammar is imported by the first request that needs it
        # The server compiles on its offload threads while the engine compiles on its own.
        self._backend_lock = threading.Lock()

    def compile(self, params: SamplingParams):
        """The request's constraint compiled (xgrammar caches it by its text); SamplingParamsError
        if it is invalid. Safe on any thread."""
        if self.tokenizer is None:
            raise SamplingParamsError("structured_outputs", "structured outputs need the "
                                      "tokenizer (skip_tokenizer_init is set)")
        with self._backend_lock:
            if self._backend is None:
                from inference_engine.structured_output.backend import GrammarBackend
                self._backend = GrammarBackend(self.tokenizer, self.vocab_size)
        return self._backend.compile(params.structured_outputs)

    def start(self, seq: Sequence, params: SamplingParams, compiled) -> None:
        """Gives the sequence a matcher of its request's `compiled` constraint. Forked sequences
        copy their parent's (Sequence.fork)."""
        stops = list(params.stop_token_ids)
        if self.eos_token_id is not None and not params.ignore_eos:
            stops.insert(0, self.eos_token_id)
        seq.grammar = self._backend.matcher(compiled, stops)

    @staticmethod
    def accept(seq: Sequence, token_id: int) -> bool:
        """Advances the sequence's grammar by its new token; False (and the sequence finished)
        if the grammar refuses it: a token outside the mask, as when min_tokens forbids the
        stop token that alone would complete the output."""
        if seq.grammar.accept_token(token_id):
            return True
        logger.warning("sequence %d: token %d does not fit its structured output; stopped",
                       seq.seq_id, token_id)
        seq.status = SequenceStatus.FINISHED_STOPPED
        return False
