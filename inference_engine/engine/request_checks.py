"""What the engine checks of a request before it queues it (each failure a ValueError naming
the problem; a SamplingParamsError names the field too), and the bad words it tokenizes."""
from inference_engine.config import EngineConfig
from inference_engine.model_executor.token_restrictions import bad_words_token_ids
from inference_engine.errors import SamplingParamsError
from inference_engine.sampling_params import SamplingParams


class RequestChecks:
    def __init__(self, config: EngineConfig, tokenizer):
        self.config = config
        self.tokenizer = tokenizer
        self.vocab_size = config.model_config.hf_config.vocab_size

    def prompt_ids(self, prompt: str | None, prompt_token_ids: list[int] | None) -> list[int]:
        """Tokenizes the prompt if needed and checks it."""
        if prompt_token_ids is None:
            if prompt is None or prompt == "":
                raise ValueError("prompt must not be empty")
            if self.tokenizer is None:
                raise ValueError("a text prompt needs the tokenizer (skip_tokenizer_init is set)")
            prompt_token_ids = self.tokenizer.encode(prompt)
        prompt_token_ids = list(prompt_token_ids)
        if not prompt_token_ids:
            raise ValueError("prompt must not be empty")
        vocab = self.vocab_size
        bad = [t for t in prompt_token_ids if not 0 <= t < vocab]
        if bad:
            raise ValueError(f"prompt token ids must be in [0, {vocab}); got {bad[:5]}")
        limit = self.config.model_config.max_model_len
        if len(prompt_token_ids) >= limit:
            raise ValueError(f"the prompt is {len(prompt_token_ids)} tokens, but max_model_len is "
                             f"{limit} (and at least one token must be generated)")
        return prompt_token_ids

    def check(self, params: SamplingParams, prompt_token_ids: list[int], priority: int,
              cache_salt: str | None) -> None:
        """The request's settings against this engine's; tokenizes its bad words."""
        sc = self.config.scheduler_config
        if priority != 0 and sc.policy != "priority":
            raise SamplingParamsError("priority", f"got priority {priority}, but the scheduling "
                                      f"policy is {sc.policy!r} "
                                      "(priorities need --scheduling-policy priority)")
        if (sc.enable_chunked_prefill and params.prompt_logprobs is not None
                and len(prompt_token_ids) > sc.max_num_batched_tokens):
            raise ValueError(f"prompt_logprobs needs the prompt computed in one step, but it is "
                             f"{len(prompt_token_ids)} tokens and max_num_batched_tokens is "
                             f"{sc.max_num_batched_tokens}")
        if cache_salt is not None and not cache_salt:
            raise SamplingParamsError("cache_salt", "cache_salt must be a non-empty string")
        if params.allowed_token_ids is not None and not all(
                0 <= t < self.vocab_size for t in params.allowed_token_ids):
            raise SamplingParamsError("allowed_token_ids",
                                      f"allowed_token_ids must be in [0, {self.vocab_size})")
        if params.bad_words and not params.bad_words_token_ids:
            if self.tokenizer is None:
                raise SamplingParamsError("bad_words", "bad_words need the tokenizer "
                                          "(skip_tokenizer_init is set)")
            params.bad_words_token_ids = bad_words_token_ids(self.tokenizer, params.bad_words)
