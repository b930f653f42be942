"""What the OpenAI endpoints share: the model check, prompt validation, sampling parameters,
and starting a prompt's request (response_streams.py answers with its outputs)."""
import logging
from collections.abc import AsyncIterator

from inference_engine.beam_search import stream_beam_search
from inference_engine.engine.async_engine import AsyncLLMEngine
from inference_engine.errors import AsyncEngineDeadError, EngineOverloadedError
from inference_engine.engine.detokenizer import decode_token
from inference_engine.engine_request import EngineRequest
from inference_engine.entrypoints.openai.errors import OpenAIError, engine_error
from inference_engine.entrypoints.openai.protocol import SamplingRequest, UsageInfo
from inference_engine.entrypoints.openai.request_prep import RequestPrep
from inference_engine.lora.request import LoRARequest
from inference_engine.outputs import RequestOutput, RequestOutputKind
from inference_engine.errors import SamplingParamsError
from inference_engine.sampling_params import SamplingParams

logger = logging.getLogger(__name__)


class OpenAIServing:
    """Base of the endpoint classes: the engine, the served model and the checks they share."""
    prompt_field = "prompt"  # the request field that holds the prompt: errors name it

    def __init__(self, engine: AsyncLLMEngine, served_model_name: str, *, prep: RequestPrep,
                 lora_requests: dict[str, LoRARequest] | None = None):
        self.engine = engine
        self.served_model_name = served_model_name
        self.prep = prep  # tokenizing and rendering, off the event loop
        self.model_aliases = engine.config.model_config.served_model_aliases
        # The adapters served, by name: the dict the server shares (adapters come and go).
        self.lora_requests = lora_requests if lora_requests is not None else {}
        self.tokenizer = engine.tokenizer
        self.max_model_len = engine.config.model_config.max_model_len
        self.vocab_size = engine.config.model_config.hf_config.vocab_size
        self.max_num_seqs = engine.config.scheduler_config.max_num_seqs
        # The model's generation config: what unset sampling fields default to.
        self.sampling_defaults = engine.config.model_config.sampling_defaults

    def check_model(self, model: str | None) -> LoRARequest | None:
        """The LoRA adapter that `model` names; None for the base model (or no name)."""
        if model in self.lora_requests:
            return self.lora_requests[model]
        if model is not None and model not in (self.served_model_name, *self.model_aliases):
            raise OpenAIError(404, f"The model `{model}` does not exist.", param="model",
                              code="model_not_found")
        return None

    def response_model(self, model: str | None) -> str:
        """The model a response names: the adapter or served name asked for, else the first."""
        known = model in self.lora_requests or model in self.model_aliases
        return model if known else self.served_model_name

    def check_engine(self, num_requests: int = 1, param: str = "prompt") -> None:
        """Raises the OpenAI error (500 engine dead, 503 overloaded) if the engine can't take
        `num_requests` more now; 400 if it never could (more than may wait at once)."""
        bound = self.engine.limits.max_waiting_requests
        if bound is not None and num_requests > bound + self.max_num_seqs:
            raise OpenAIError(400, f"a request may start at most {bound + self.max_num_seqs} "
                              "sequences at once (--max-num-seqs plus --max-waiting-requests), "
                              f"this one {num_requests}", param=param)
        try:
            self.engine.check_admission(num_requests)
        except (AsyncEngineDeadError, EngineOverloadedError) as exc:
            raise engine_error(exc) from exc

    def prompt_logprobs_json(self, output: RequestOutput,
                             k: int | None) -> list[dict | None] | None:
        """vLLM's prompt_logprobs: per prompt token (None for the first) the token's own entry
        and the top `k`, as {token id: {logprob, rank, decoded_token}}; None when the request
        did not ask (k None)."""
        if k is None or output.prompt_logprobs is None:
            return None
        out = []
        for token_id, top in zip(output.prompt_token_ids, output.prompt_logprobs):
            if top is None:
                out.append(None)
                continue
            out.append({str(t): {"logprob": lp.logprob, "rank": lp.rank, "decoded_token": (
                lp.decoded_token if lp.decoded_token is not None or self.tokenizer is None
                else decode_token(self.tokenizer, t))}
                for t, lp in top.items() if t == token_id or (lp.rank or 0) <= k})
        return out

    @staticmethod
    def running_usage(request: SamplingRequest, counts: dict, key, num_prompt_tokens: int,
                      num_new: int) -> UsageInfo | None:
        """With continuous_usage_stats, a chunk's usage: its prompt and the tokens of its choice
        `key` so far (counted in `counts`); else None."""
        if not request.continuous_usage:
            return None
        counts[key] = counts.get(key, 0) + num_new
        return UsageInfo(prompt_tokens=num_prompt_tokens, completion_tokens=counts[key],
                         total_tokens=num_prompt_tokens + counts[key])

    def check_token_ids(self, token_ids: list[int], param: str) -> None:
        if not token_ids:
            raise OpenAIError(400, f"{param} must not be empty", param=param)
        bad = [t for t in token_ids if not 0 <= t < self.vocab_size]
        if bad:
            raise OpenAIError(400, f"token ids must be in [0, {self.vocab_size}); got {bad[:5]}",
                              param=param)

    async def prompts_of(self, prompt: str | list[str] | list[int] | list[list[int]],
                         param: str, truncate: int | None = None
                         ) -> list[tuple[str | None, list[int]]]:
        """(text or None, token ids) of each prompt of a request's field `param`: a text, a list
        of texts, token ids, or lists of token ids; only the last `truncate` tokens of a longer
        one (vLLM's truncate_prompt_tokens; its text is then None: not what runs)."""
        if isinstance(prompt, str) or (prompt and all(isinstance(t, int) for t in prompt)):
            prompt = [prompt]
        if not prompt:
            raise OpenAIError(400, f"{param} must not be empty", param=param)
        prompts = []
        for item in prompt:
            ids = await self.prep.encode(item, param) if isinstance(item, str) else list(item)
            text = item if isinstance(item, str) else None
            if truncate is not None and len(ids) > truncate:
                ids, text = ids[-truncate:], None
            prompts.append((text, ids))
        return prompts

    def max_tokens_for(self, num_prompt_tokens: int, max_tokens: int | None,
                       prompt_word: str = "prompt") -> int | None:
        """Checks prompt + completion against the context; a missing max_tokens gets the rest
        (at most the generation config's max_new_tokens)."""
        if max_tokens is not None and max_tokens < 1:
            return max_tokens  # SamplingParams reports it, naming max_tokens
        completion = 1 if max_tokens is None else max_tokens
        if num_prompt_tokens + completion > self.max_model_len:
            raise OpenAIError(
                400, f"This model's maximum context length is {self.max_model_len} tokens. "
                f"However, you requested {num_prompt_tokens + completion} tokens "
                f"({num_prompt_tokens} in the {prompt_word}, {completion} in the completion). "
                f"Please reduce the length of the {prompt_word} or completion.",
                param=prompt_word, code="context_length_exceeded")
        if max_tokens is not None:
            return max_tokens
        rest = self.max_model_len - num_prompt_tokens
        return min(rest, self.sampling_defaults.get("max_tokens", rest))

    def sampling_params(self, request: SamplingRequest, max_tokens: int | None,
                        logprobs: int | None, prompt_logprobs: int | None = None
                        ) -> SamplingParams:
        """The request's SamplingParams; what this engine can run of them is the engine's to
        check (a refusal still answers 400 before any stream: see started_stream)."""
        if request.stream and request.best_of is not None and request.best_of > request.n:
            raise OpenAIError(400, "best_of > n is not supported with stream", param="best_of")
        if request.stream and request.prompt_logprobs is not None:
            raise OpenAIError(400, "prompt_logprobs are not returned in streams",
                              param="prompt_logprobs")
        try:
            params = request.to_sampling_params(max_tokens, logprobs, prompt_logprobs,
                                                self.sampling_defaults)
        except SamplingParamsError as exc:
            raise OpenAIError(400, str(exc), param=exc.param) from exc
        except (TypeError, ValueError) as exc:
            raise OpenAIError(400, str(exc)) from exc
        if params.structured_outputs is not None and request.use_beam_search:
            # The beams' candidates would ignore it.
            raise OpenAIError(400, "use_beam_search does not keep to structured outputs (nor "
                              "forced tool calls)", param="use_beam_search")
        return params

    def generate(self, request: SamplingRequest, request_id: str,
                 prompt: tuple[str | None, list[int]],
                 params: SamplingParams, kind: RequestOutputKind, lora) -> AsyncIterator:
        """The engine's outputs for one prompt (text or None, token ids); with
        use_beam_search, one final output of the request's n best beams."""
        text, ids = prompt
        if request.use_beam_search:
            return stream_beam_search(self.engine, request_id, text, ids,
                                      request.to_beam_search_params(params.max_tokens), lora,
                                      params.logprobs)
        return self.engine.generate(EngineRequest(
            request_id, text, params, ids, kind, request.priority, lora, request.cache_salt,
            prompt_field=self.prompt_field))
