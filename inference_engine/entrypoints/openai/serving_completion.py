"""POST /v1/completions: one engine request per prompt, `n` choices each, whole or streamed.

Choice `i * n + j` is completion j of prompt i, as in OpenAI's API. A streamed request asks the
engine for deltas, a whole one for its final output only.
"""
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from inference_engine.engine.detokenizer import decode_token
from inference_engine.entrypoints.openai.protocol import (CompletionChoice, CompletionChunk,
                                                          CompletionLogProbs, CompletionRequest,
                                                          CompletionResponse, UsageInfo)
from inference_engine.entrypoints.openai.response_streams import (SSE_DONE,
                                                                  collect_final_outputs,
                                                                  merge_async_iterators, sse,
                                                                  started_stream)
from inference_engine.entrypoints.openai.errors import OpenAIError, engine_error
from inference_engine.entrypoints.openai.serving_engine import OpenAIServing
from inference_engine.entrypoints.openai.text_chunks import CompletionTextChunks
from inference_engine.outputs import CompletionOutput, RequestOutput, RequestOutputKind
from inference_engine.sequence import Logprob

logger = logging.getLogger(__name__)

Prompt = tuple[str | None, list[int]]  # the text (None for token ids) and its token ids


class OpenAIServingCompletion(OpenAIServing):
    """Serves the legacy completions endpoint."""

    async def create_completion(self, request: CompletionRequest, raw_request: Request) -> Response:
        lora = self.check_model(request.model)
        self.check_engine()
        if request.suffix:
            raise OpenAIError(400, "suffix is not supported", param="suffix")
        request_id = f"cmpl-{raw_request.state.request_id}"
        prompts = await self.prompts_of(request.prompt, "prompt",
                                        request.truncate_prompt_tokens)
        wanted = [k for k in (request.logprobs if request.echo else None, request.prompt_logprobs)
                  if k is not None]
        prompt_logprobs = max(wanted) if wanted else None
        params = [self.sampling_params(request, self.max_tokens_for(len(ids), request.max_tokens),
                                       request.logprobs, prompt_logprobs) for _, ids in prompts]
        logger.info("%s: %d prompt(s), n=%d, max_tokens=%s, stream=%s", request_id, len(prompts),
                    request.n, params[0].max_tokens, request.stream)
        kind = RequestOutputKind.DELTA if request.stream else RequestOutputKind.FINAL_ONLY
        self.check_engine(len(prompts))
        outputs = merge_async_iterators(*[
            self.generate(request, f"{request_id}-{i}", prompt, p, kind, lora)
            for i, (prompt, p) in enumerate(zip(prompts, params))])
        created = int(time.time())
        if request.stream:
            outputs = await started_stream(outputs, raw_request)
            if outputs is None:
                return Response(status_code=499)  # nobody is listening any more
            return StreamingResponse(self._stream(request, request_id, created, prompts, outputs),
                                     media_type="text/event-stream")
        final = await collect_final_outputs(outputs, raw_request)
        if final is None:
            return Response(status_code=499)  # nobody is listening any more
        choices = [self._choice(request, i, prompts[i], final[i], c, 0, request.echo)
                   for i in sorted(final) for c in final[i].outputs]
        response = CompletionResponse(id=request_id, created=created,
                                      model=self.response_model(request.model), choices=choices,
                                      usage=_usage(final.values()))
        return JSONResponse(response.model_dump())

    def _choice(self, request: CompletionRequest, i: int, prompt: Prompt, output: RequestOutput,
                completion: CompletionOutput, num_sent_chars: int, echo: bool) -> CompletionChoice:
        """Choice `completion` (whole or a delta) of prompt i, the prompt first when `echo`;
        its tokens' text offsets start at `num_sent_chars`."""
        text, token_ids, entries = completion.text, completion.token_ids, completion.logprobs or []
        if echo:
            text = self._prompt_text(prompt) + text
            token_ids = output.prompt_token_ids + token_ids
            entries = (output.prompt_logprobs or [None] * len(prompt[1])) + entries
        logprobs = None
        if request.logprobs is not None:
            logprobs = self._logprobs(token_ids, entries, num_sent_chars)
        return CompletionChoice(
            index=i * request.n + completion.index, text=text, logprobs=logprobs,
            finish_reason=completion.finish_reason, stop_reason=completion.stop_reason,
            prompt_logprobs=self.prompt_logprobs_json(output, request.prompt_logprobs))

    def _prompt_text(self, prompt: Prompt) -> str:
        text, token_ids = prompt
        return text if text is not None else self.tokenizer.decode(token_ids)

    def _logprobs(self, token_ids: list[int], entries: list[dict[int, Logprob] | None],
                  offset: int) -> CompletionLogProbs:
        out = CompletionLogProbs()
        for token_id, top in zip(token_ids, entries):
            chosen = top.get(token_id) if top else None
            token = (chosen.decoded_token if chosen and chosen.decoded_token is not None
                     else decode_token(self.tokenizer, token_id))
            out.tokens.append(token)
            out.token_logprobs.append(chosen.logprob if chosen else None)
            out.top_logprobs.append(None if top is None else {
                lp.decoded_token or decode_token(self.tokenizer, t): lp.logprob
                for t, lp in sorted(top.items(), key=lambda kv: kv[1].rank or 0)})
            out.text_offset.append(offset)
            offset += len(token)
        return out

    async def _stream(self, request: CompletionRequest, request_id: str, created: int,
                      prompts: list[Prompt], outputs: AsyncIterator) -> AsyncIterator[str]:
        """A chunk per delta output and choice: text-only chunks from a template, those with
        log-probabilities through the models. An output's chunks go out in one write, as each
        write passes every middleware."""
        model = self.response_model(request.model)
        text_chunk = CompletionTextChunks(request_id, created, model)
        sent_chars: dict[int, int] = {}  # per choice index, the echoed prompt included
        num_prompt_tokens: dict[int, int] = {}  # per prompt that produced output
        num_cached: dict[int, int] = {}
        num_tokens = 0
        choice_tokens: dict[int, int] = {}  # per choice index (continuous_usage_stats)
        try:
            async for i, output in outputs:
                num_prompt_tokens[i] = len(output.prompt_token_ids)
                num_cached[i] = output.num_cached_tokens
                events = []
                for c in output.outputs:
                    index = i * request.n + c.index
                    echo = request.echo and index not in sent_chars
                    num_tokens += len(c.token_ids)
                    usage = self.running_usage(request, choice_tokens, index,
                                               num_prompt_tokens[i], len(c.token_ids))
                    if request.logprobs is None:
                        sent_chars[index] = 0  # no offsets to keep: this marks it as started
                        text = self._prompt_text(prompts[i]) + c.text if echo else c.text
                        events.append(text_chunk(index, text, c.finish_reason, c.stop_reason,
                                                 usage))
                        continue
                    choice = self._choice(request, i, prompts[i], output, c,
                                          sent_chars.get(index, 0), echo)
                    sent_chars[index] = sent_chars.get(index, 0) + len(choice.text)
                    events.append(sse(CompletionChunk(id=request_id, created=created,
                                                      model=model, choices=[choice],
                                                      usage=usage)))
                if events:
                    yield "".join(events)
            if request.include_usage:
                usage = UsageInfo.of(sum(num_prompt_tokens.values()), num_tokens,
                                     sum(num_cached.values()))
                yield sse(CompletionChunk(id=request_id, created=created,
                                          model=model, choices=[],
                                          usage=usage))
        except Exception as exc:
            yield engine_error(exc).to_sse()
        yield SSE_DONE


def _usage(outputs) -> UsageInfo:
    outputs = list(outputs)
    return UsageInfo.of(sum(len(o.prompt_token_ids) for o in outputs),
                        sum(len(c.token_ids) for o in outputs for c in o.outputs),
                        sum(o.num_cached_tokens for o in outputs))
