"""The OpenAI-compatible HTTP server.

`build_app` is the factory: its lifespan loads the engine (or takes one given), starts the async
engine's loop and stops it on shutdown; everything lives on `app.state`. The routes are thin and
call the serving modules. `run_server` runs the app under uvicorn for `inference-engine serve`
(SIGTERM: stop accepting, let open requests finish, then stop the engine).
"""
import argparse
import asyncio
import logging
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference_engine import __version__
from inference_engine.engine.async_engine import AsyncEngineDeadError, AsyncLLMEngine
from inference_engine.engine.metrics import Metrics, StatLogger
from inference_engine.entrypoints.openai.cli_args import engine_args_from, lora_requests_from
from inference_engine.entrypoints.openai.middleware import (ApiKeyMiddleware, RequestIdFilter,
                                                            RequestIdMiddleware)
from inference_engine.entrypoints.openai.protocol import (ChatCompletionRequest,
                                                          ChatCompletionResponse,
                                                          CompletionRequest, CompletionResponse,
                                                          ErrorResponse)
from inference_engine.entrypoints.openai.protocol_responses import ResponsesRequest
from inference_engine.entrypoints.openai.protocol_utility import (DetokenizeRequest,
                                                                  DetokenizeResponse, ModelList,
                                                                  TokenizeRequest,
                                                                  TokenizeResponse)
from inference_engine.entrypoints.openai.serving_chat import OpenAIServingChat
from inference_engine.entrypoints.openai.serving_completion import OpenAIServingCompletion
from inference_engine.entrypoints.openai.serving_engine import OpenAIError
from inference_engine.entrypoints.openai.serving_models import (LoadLoRAAdapterRequest,
                                                                ServedModels,
                                                                UnloadLoRAAdapterRequest)
from inference_engine.entrypoints.openai.serving_embedding import (EmbeddingRequest,
                                                                   EmbeddingResponse,
                                                                   OpenAIServingEmbedding)
from inference_engine.entrypoints.openai.serving_score import (OpenAIServingScore, RerankRequest,
                                                               RerankResponse, ScoreRequest,
                                                               ScoreResponse)
from inference_engine.entrypoints.openai.serving_responses import OpenAIServingResponses
from inference_engine.entrypoints.openai.serving_tokenization import OpenAIServingTokenization

logger = logging.getLogger(__name__)

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 500)}


def build_app(args: argparse.Namespace, engine=None) -> FastAPI:
    """The server for parsed serve flags; `engine` (an LLMEngine) skips loading one."""
    if args.enable_auto_tool_choice and not args.tool_call_parser:
        raise ValueError("--enable-auto-tool-choice needs --tool-call-parser")
    loras = lora_requests_from(args)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        llm_engine = engine or await asyncio.to_thread(_load_engine, args)
        if args.chat_template and llm_engine.tokenizer is not None:  # requests' default
            llm_engine.tokenizer.chat_template = args.chat_template
        for lora in loras.values():  # read and checked now: a bad adapter stops the start
            llm_engine.add_lora(lora)
        config = llm_engine.config
        registry = CollectorRegistry()
        metrics = Metrics(registry, config.cache_config, config.model_config.max_model_len)
        interval = float("inf") if args.disable_log_stats else args.log_stats_interval
        client = AsyncLLMEngine(llm_engine, StatLogger(metrics, interval))
        name = config.model_config.served_model_name
        state = app.state
        state.engine_client, state.registry = client, registry
        state.serving_completion = OpenAIServingCompletion(client, name, lora_requests=loras)
        state.serving_chat = OpenAIServingChat(
            client, name, args.tool_call_parser if args.enable_auto_tool_choice else None,
            args.reasoning_parser, lora_requests=loras)
        state.serving_tokenization = OpenAIServingTokenization(client, name, lora_requests=loras)
        state.serving_responses = OpenAIServingResponses(
            client, name, args.tool_call_parser if args.enable_auto_tool_choice else None,
            args.reasoning_parser, lora_requests=loras)
        state.serving_embedding = OpenAIServingEmbedding(client, name, lora_requests=loras)
        state.serving_score = OpenAIServingScore(client, name, lora_requests=loras)
        state.served_models = ServedModels(client, name, loras, args.allow_runtime_lora_updating)
        client.start()
        logger.info("serving %s (max_model_len=%d)", name, config.model_config.max_model_len)
        try:
            yield
        finally:
            await client.shutdown()
            logger.info("engine stopped")

    app = FastAPI(title="inference-engine", version=__version__, lifespan=lifespan)
    for path, handler, response_model in _ROUTES["POST"]:
        app.post(path, response_model=response_model, responses=_ERRORS)(handler)
    for path, handler, response_model in _ROUTES["GET"]:
        app.get(path, response_model=response_model, responses=_ERRORS)(handler)
    app.add_exception_handler(OpenAIError, _openai_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Added innermost first: request id (outermost), CORS, then the API key check.
    if args.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=args.api_key)
    app.add_middleware(CORSMiddleware, allow_origins=args.allowed_origins,
                       allow_credentials=args.allow_credentials,
                       allow_methods=args.allowed_methods, allow_headers=args.allowed_headers,
                       expose_headers=["X-Request-Id"])
    app.add_middleware(RequestIdMiddleware)
    return app


def _load_engine(args: argparse.Namespace):
    from inference_engine.engine.llm_engine import LLMEngine
    return LLMEngine.from_engine_args(engine_args_from(args))


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
    return raw_request.app.state.serving_tokenization.tokenize(request)


async def detokenize(request: DetokenizeRequest, raw_request: Request) -> DetokenizeResponse:
    return raw_request.app.state.serving_tokenization.detokenize(request)


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


_ROUTES = {
    "POST": [("/v1/completions", create_completion, CompletionResponse),
             ("/v1/chat/completions", create_chat_completion, ChatCompletionResponse),
             ("/v1/responses", create_response, None),
             ("/v1/embeddings", create_embedding, EmbeddingResponse),
             *((path, create_score, ScoreResponse) for path in ("/score", "/v1/score")),
             *((path, create_rerank, RerankResponse)
               for path in ("/rerank", "/v1/rerank", "/v2/rerank")),
             ("/invocations", invocations, None), ("/ping", health, None),
             ("/tokenize", tokenize, TokenizeResponse),
             ("/detokenize", detokenize, DetokenizeResponse),
             ("/reset_prefix_cache", reset_prefix_cache, None),
             ("/v1/load_lora_adapter", load_lora_adapter, None),
             ("/v1/unload_lora_adapter", unload_lora_adapter, None)],
    "GET": [("/v1/models", show_models, ModelList), ("/health", health, None),
            ("/ping", health, None),  # SageMaker's health check (also POST)
            ("/version", version, None), ("/metrics", metrics, None)],
}


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """Bad request bodies answer 400 in OpenAI's shape (FastAPI's default is a 422)."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return OpenAIError(400, f"the body is not valid JSON: {first.get('msg', '')}").to_response()
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg", "invalid body"))
    return OpenAIError(400, message, param=param).to_response()


async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
    return exc.to_response()


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = OpenAIError(exc.status_code, str(exc.detail)).to_response()
    response.headers.update(exc.headers or {})
    return response


def run_server(args: argparse.Namespace) -> None:
    """Serves until SIGINT/SIGTERM; open requests get `--shutdown-timeout` seconds to finish."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    for handler in root.handlers:
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter(
            "%(levelname)s %(asctime)s %(name)s [%(request_id)s]: %(message)s"))
    config = uvicorn.Config(build_app(args), host=args.host, port=args.port, log_config=None,
                            log_level=args.uvicorn_log_level,
                            timeout_graceful_shutdown=args.shutdown_timeout)
    uvicorn.Server(config).run()
