"""The HTTP routes: thin handlers that call the serving modules (on `app.state`), and what
/openapi.json says each one answers (`add_routes` registers both)."""
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema

from inference_engine import __version__
from inference_engine.entrypoints.openai.errors import OpenAIError
from inference_engine.entrypoints.openai.protocol import (ChatCompletionChunk,
                                                          ChatCompletionRequest,
                                                          ChatCompletionResponse, CompletionChunk,
                                                          CompletionRequest, CompletionResponse)
from inference_engine.entrypoints.openai.protocol_responses import ResponsesRequest
from inference_engine.entrypoints.openai.protocol_utility import (DetokenizeRequest,
                                                                  DetokenizeResponse, ErrorResponse,
                                                                  ModelList, TokenizeRequest,
                                                                  TokenizeResponse)
from inference_engine.entrypoints.openai.serving_embedding import (EmbeddingRequest,
                                                                   EmbeddingResponse)
from inference_engine.entrypoints.openai.serving_models import (LoadLoRAAdapterRequest,
                                                                UnloadLoRAAdapterRequest)
from inference_engine.entrypoints.openai.serving_score import (RerankRequest, RerankResponse,
                                                               ScoreRequest, ScoreResponse)
from inference_engine.errors import AsyncEngineDeadError


async def create_completion(request: CompletionRequest, raw_request: Request) -> Response:
    return await raw_request.app.state.serving_completion.create_completion(request, raw_request)


async def create_chat_completion(request: ChatCompletionRequest, raw_request: Request) -> Response:
    return await raw_request.app.state.serving_chat.create_chat_completion(request, raw_request)


async def show_models(raw_request: Request) -> ModelList:
    state = raw_request.app.state
    return state.served_models.model_list(state.serving_completion.max_model_len)


async def load_lora_adapter(request: LoadLoRAAdapterRequest, raw_request: Request) -> Response:
    return PlainTextResponse(await raw_request.app.state.served_models.load(request))


async def unload_lora_adapter(request: UnloadLoRAAdapterRequest,
                              raw_request: Request) -> Response:
    return PlainTextResponse(await raw_request.app.state.served_models.unload(request))


async def tokenize(request: TokenizeRequest, raw_request: Request) -> TokenizeResponse:
    return await raw_request.app.state.serving_tokenization.tokenize(request)


async def detokenize(request: DetokenizeRequest, raw_request: Request) -> DetokenizeResponse:
    return await raw_request.app.state.serving_tokenization.detokenize(request)


async def create_embedding(request: EmbeddingRequest, raw_request: Request) -> Response:
    return await raw_request.app.state.serving_embedding.create_embedding(request, raw_request)


async def create_score(request: ScoreRequest, raw_request: Request) -> Response:
    return await raw_request.app.state.serving_score.create_score(request, raw_request)


async def create_response(request: ResponsesRequest, raw_request: Request) -> Response:
    return await raw_request.app.state.serving_responses.create_response(request, raw_request)


async def create_rerank(request: RerankRequest, raw_request: Request) -> Response:
    return await raw_request.app.state.serving_score.create_rerank(request, raw_request)


async def invocations(raw_request: Request) -> Response:
    """SageMaker's route (vLLM's): a chat request ("messages"), a completion ("prompt") or an
    embedding request ("input"), told apart by the body."""
    try:
        body = await raw_request.json()
    except ValueError as exc:
        raise OpenAIError(400, f"the body is no JSON: {exc}") from exc
    kinds = [(key, model, handler) for key, model, handler in (
        ("messages", ChatCompletionRequest, create_chat_completion),
        ("prompt", CompletionRequest, create_completion),
        ("input", EmbeddingRequest, create_embedding)) if isinstance(body, dict) and key in body]
    if not kinds:
        raise OpenAIError(400, "/invocations takes a chat (messages), completion (prompt) or "
                          "embedding (input) request")
    _, model, handler = kinds[0]
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    return await handler(request, raw_request)


async def health(raw_request: Request) -> Response:
    """200 while the engine loop runs; 500 once it has died."""
    try:
        raw_request.app.state.engine_client.check_health()
    except AsyncEngineDeadError as exc:
        return OpenAIError(500, str(exc), code="engine_dead").to_response()
    return Response(status_code=200)


async def reset_prefix_cache(raw_request: Request) -> Response:
    """Forgets the cached prompt prefixes (after changing what the model would compute for
    them, or to measure without the cache); 200 with nothing to say."""
    try:
        await raw_request.app.state.engine_client.reset_prefix_cache()
    except AsyncEngineDeadError as exc:
        return OpenAIError(500, str(exc), code="engine_dead").to_response()
    return Response(status_code=200)


async def version() -> dict:
    return {"version": __version__}


async def metrics(raw_request: Request) -> Response:
    return Response(generate_latest(raw_request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


# The answers each route documents in /openapi.json besides its 200. Errors come in OpenAI's
# shape, except a 499 (the client went away first): nothing is sent then.


_ERROR_ANSWERS = {
    400: "The request is invalid: its body, or a value this model or server can't take.",
    401: "The API key is missing or wrong (a server started with --api-key).",
    404: "The model or LoRA adapter named is not served.",
    408: "The body did not arrive in time, or the client stopped reading its stream.",
    413: "The body is over the size limit.",
    499: "The client went away before the answer; nothing is sent.",
    500: "An internal error, or the engine has died.",
    503: "Overloaded: retry after Retry-After seconds.",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "required": True, "schema": {"type": "integer"}}}
_ENGINE_ERRORS = (400, 401, 404, 408, 413, 499, 500, 503)  # requests the engine runs
_TOKENIZER_ERRORS = (400, 401, 404, 408, 413, 500, 503)
_LORA_ERRORS = (400, 401, 404, 408, 413, 500)
_PROBE_ERRORS = (500,)  # open routes without a body (middleware.OPEN_PATHS)
# The models that only streams' events carry: /openapi.json gets them as components.
_STREAM_MODELS = (CompletionChunk, ChatCompletionChunk)
_COMPONENTS = "#/components/schemas/{model}"


def _ref(model) -> dict:
    return {"$ref": _COMPONENTS.format(model=model.__name__)}


def _errors(codes: tuple[int, ...]) -> dict:
    """The `responses` entries of the error answers `codes`."""
    answers = {}
    for code in codes:
        answer = answers[code] = {"description": _ERROR_ANSWERS[code]}
        if code != 499:
            answer["model"] = ErrorResponse
        if code == 503:
            answer["headers"] = _RETRY_AFTER
    return answers


def _events(*payloads: dict) -> dict:
    """`text/event-stream` whose events carry JSON of one of `payloads` (schemas), the stream
    ended by `data: [DONE]`."""
    data = {"type": "string", "if": {"const": "[DONE]"},
            "else": {"contentMediaType": "application/json",
                     "contentSchema": {"anyOf": list(payloads)}}}
    return {"itemSchema": {"type": "object", "required": ["data"],
                           "properties": {"data": data, "event": {"type": "string"}}}}


def _json(model, errors: tuple[int, ...], stream: dict | None = None, **options) -> dict:
    """A route's options: it answers `model` as JSON, or (given `stream`) Server-Sent Events
    when the request streams."""
    responses = _errors(errors)
    if stream is not None:
        responses[200] = {"description": "The answer; Server-Sent Events if the request streams",
                          "content": {"text/event-stream": stream}}
    return {"response_model": model, "responses": responses, **options}


def _bare(media_type: str | None, errors: tuple[int, ...]) -> dict:
    """A route's options: it answers text of `media_type`, or (None) an empty body with no
    content type."""
    answer = {"description": "Done (an empty body)" if media_type is None else "The answer"}
    if media_type is not None:
        answer["content"] = {media_type: {"schema": {"type": "string"}}}
    return {"response_class": Response, "responses": {200: answer, **_errors(errors)}}


_STREAMED_ERROR = _ref(ErrorResponse)  # a failure after the stream began
# The Responses API's events: each has its type and number; a failure is an "error" event.
_RESPONSES_EVENT = {"type": "object", "required": ["type", "sequence_number"],
                    "properties": {"type": {"type": "string"},
                                   "sequence_number": {"type": "integer"}}}
# /invocations reads its body itself: a chat, completion or embedding request.
_INVOCATIONS_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"anyOf": [_ref(ChatCompletionRequest), _ref(CompletionRequest),
                         _ref(EmbeddingRequest)]}}}}}
_VERSION = {"type": "object", "required": ["version"],
            "properties": {"version": {"type": "string"}}}

_ROUTES = {
    "POST": [
        ("/v1/completions", create_completion,
         _json(CompletionResponse, _ENGINE_ERRORS,
               _events(_ref(CompletionChunk), _STREAMED_ERROR))),
        ("/v1/chat/completions", create_chat_completion,
         _json(ChatCompletionResponse, _ENGINE_ERRORS,
               _events(_ref(ChatCompletionChunk), _STREAMED_ERROR))),
        ("/v1/responses", create_response,
         _json(None, _ENGINE_ERRORS, _events(_RESPONSES_EVENT))),
        ("/v1/embeddings", create_embedding, _json(EmbeddingResponse, _ENGINE_ERRORS)),
        *((path, create_score, _json(ScoreResponse, _ENGINE_ERRORS))
          for path in ("/score", "/v1/score")),
        *((path, create_rerank, _json(RerankResponse, _ENGINE_ERRORS))
          for path in ("/rerank", "/v1/rerank", "/v2/rerank")),
        ("/invocations", invocations,
         _json(ChatCompletionResponse | CompletionResponse | EmbeddingResponse, _ENGINE_ERRORS,
               _events(_ref(ChatCompletionChunk), _ref(CompletionChunk), _STREAMED_ERROR),
               openapi_extra=_INVOCATIONS_BODY)),
        ("/ping", health, _bare(None, _PROBE_ERRORS)),
        ("/tokenize", tokenize, _json(TokenizeResponse, _TOKENIZER_ERRORS)),
        ("/detokenize", detokenize, _json(DetokenizeResponse, _TOKENIZER_ERRORS)),
        ("/reset_prefix_cache", reset_prefix_cache, _bare(None, (401, 500))),
        ("/v1/load_lora_adapter", load_lora_adapter, _bare("text/plain", _LORA_ERRORS)),
        ("/v1/unload_lora_adapter", unload_lora_adapter, _bare("text/plain", _LORA_ERRORS))],
    "GET": [
        ("/v1/models", show_models, _json(ModelList, (401, 500))),
        ("/health", health, _bare(None, _PROBE_ERRORS)),
        ("/ping", health, _bare(None, _PROBE_ERRORS)),  # SageMaker's health check (also POST)
        ("/version", version, {"responses": {200: {"content": {"application/json": {
            "schema": _VERSION}}}, **_errors(_PROBE_ERRORS)}}),
        ("/metrics", metrics, _bare("text/plain", _PROBE_ERRORS))],  # Prometheus' text format
}


def add_routes(app: FastAPI) -> None:
    """Registers `_ROUTES`, and has /openapi.json describe what they answer."""
    for method, routes in _ROUTES.items():
        for path, handler, options in routes:
            app.add_api_route(path, handler, methods=[method], **options)
    app.openapi = lambda: _openapi_schema(app)


def _openapi_schema(app: FastAPI) -> dict:
    """FastAPI's schema less the 422 it documents for every body (a bad body answers 400:
    see `_validation_error`), plus the models of the streams' events."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        components = schema["components"]["schemas"]
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        _, streamed = models_json_schema([(model, "serialization") for model in _STREAM_MODELS],
                                         ref_template=_COMPONENTS)
        for name, definition in streamed["$defs"].items():
            components.setdefault(name, definition)
    return app.openapi_schema
