"""What the engine checks of a request before it queues it, in one place for every caller (each
failure an InvalidRequestError naming the field), and what it prepares on the way: the prompt's
token ids, the bad words' token ids, the compiled structured-output constraint.

`check` reads only the configuration, the tokenizer and xgrammar's compiler, so a server runs
it on a thread of its own, off its event loop (a grammar may take long to compile)."""
from inference_engine.config import EngineConfig
from inference_engine.engine_request import EngineRequest
from inference_engine.errors import InvalidRequestError, SamplingParamsError
from inference_engine.pooling_params import PoolingParams
from inference_engine.sampling_params import SamplingParams
from inference_engine.structured_output.manager import StructuredOutputManager


class RequestChecks:
    def __init__(self, config: EngineConfig, tokenizer,
                 structured_outputs: StructuredOutputManager):
        self.config = config
        self.tokenizer = tokenizer
        self.structured_outputs = structured_outputs
        self.vocab_size = config.model_config.hf_config.vocab_size

    def check(self, request: EngineRequest) -> None:
        """Checks the request against this engine and prepares it (see the module's doc);
        marks it checked."""
        request.prompt_token_ids = self.prompt_ids(request.prompt, request.prompt_token_ids,
                                                   request.prompt_field)
        sc = self.config.scheduler_config
        if request.priority != 0 and sc.policy != "priority":
            raise InvalidRequestError("priority", f"got priority {request.priority}, but the "
                                      f"scheduling policy is {sc.policy!r} (priorities need "
                                      "--scheduling-policy priority)")
        if request.cache_salt is not None and not request.cache_salt:
            raise InvalidRequestError("cache_salt", "cache_salt must be a non-empty string")
        if not isinstance(request.params, PoolingParams):
            self._check_sampling(request.params, request.prompt_token_ids)
            if request.params.structured_outputs is not None:
                request.grammar = self.structured_outputs.compile(request.params)
        request.checked = True

    def prompt_ids(self, prompt: str | None, prompt_token_ids: list[int] | None,
                   field: str = "prompt") -> list[int]:
        """The prompt's token ids (tokenized here if not given), checked; errors name `field`."""
        if prompt_token_ids is None:
            if not prompt:
                raise InvalidRequestError(field, f"{field} must not be empty")
            if self.tokenizer is None:
                raise InvalidRequestError(field, "a text prompt needs the tokenizer "
                                          "(skip_tokenizer_init is set)")
            prompt_token_ids = self.tokenizer.encode(prompt)
        prompt_token_ids = list(prompt_token_ids)
        if not prompt_token_ids:
            raise InvalidRequestError(field, f"{field} must not be empty")
        bad = [t for t in prompt_token_ids if not 0 <= t < self.vocab_size]
        if bad:
            raise InvalidRequestError(field, f"token ids must be in [0, {self.vocab_size}); "
                                      f"got {bad[:5]}")
        limit = self.config.model_config.max_model_len
        if len(prompt_token_ids) >= limit:
            raise InvalidRequestError(field, f"the prompt is {len(prompt_token_ids)} tokens, "
                                      f"but max_model_len is {limit} (and at least one token "
                                      "must be generated)")
        return prompt_token_ids

    def _check_sampling(self, params: SamplingParams, prompt_token_ids: list[int]) -> None:
        """The settings that SamplingParams takes but this engine can't run: token ids outside
        its vocabulary, more sequences than a step schedules (they would never run)."""
        sc, vocab = self.config.scheduler_config, self.vocab_size
        for name, ids in (("logit_bias", params.logit_bias), ("stop_token_ids",
                          params.stop_token_ids), ("allowed_token_ids", params.allowed_token_ids)):
            if any(not 0 <= t < vocab for t in ids or ()):
                raise SamplingParamsError(name, f"{name} must be token ids in [0, {vocab})")
        if params.top_k > vocab:
            raise SamplingParamsError("top_k", f"top_k must be at most the vocabulary size "
                                      f"{vocab}, got {params.top_k}")
        for name in ("n", "best_of"):
            if getattr(params, name) > sc.max_num_seqs:
                raise SamplingParamsError(name, f"{name} must be at most max_num_seqs "
                                          f"({sc.max_num_seqs}), got {getattr(params, name)}")
        if (sc.enable_chunked_prefill and params.prompt_logprobs is not None
                and len(prompt_token_ids) > sc.max_num_batched_tokens):
            raise SamplingParamsError("prompt_logprobs", f"prompt_logprobs needs the prompt "
                                      f"computed in one step, but it is {len(prompt_token_ids)} "
                                      f"tokens and max_num_batched_tokens is "
                                      f"{sc.max_num_batched_tokens}")
        if params.bad_words and not params.bad_words_token_ids:
            if self.tokenizer is None:
                raise SamplingParamsError("bad_words", "bad_words need the tokenizer "
                                          "(skip_tokenizer_init is set)")
            params.bad_words_token_ids = bad_words_token_ids(self.tokenizer, params.bad_words)


def bad_words_token_ids(tokenizer, words: list[str]) -> list[list[int]]:
    """The token sequences of `words`, with and without a leading space (as a word reads at the
    start of a text and inside one); sample/token_restrictions.py bans them."""
    sequences: list[list[int]] = []
    for word in words:
        for text in (word.lstrip(), " " + word.lstrip()):
            ids = list(tokenizer.encode(text, add_special_tokens=False))
            if ids and ids not in sequences:
                sequences.append(ids)
    return sequences
