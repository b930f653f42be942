"""The OpenAI-compatible HTTP server.

`build_app` is the factory: its lifespan loads the engine (or takes one given), starts the async
engine's loop and stops it on shutdown; everything lives on `app.state`. The routes (routes.py)
are thin and call the serving modules; launcher.py runs the app for `inference-engine serve`.
"""
import argparse
import asyncio
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference_engine import __version__
from inference_engine.engine.admission import AdmissionLimits
from inference_engine.engine.async_engine import AsyncLLMEngine
from inference_engine.engine.metrics import Metrics, StatLogger
from inference_engine.entrypoints.openai.base import RequestFieldError
from inference_engine.entrypoints.openai.chat_template_sandbox import ChatTemplateSandbox
from inference_engine.entrypoints.openai.cli_args import engine_args_from, lora_requests_from
from inference_engine.entrypoints.openai.errors import OpenAIError
from inference_engine.entrypoints.openai.http_limits import BodyLimitMiddleware
from inference_engine.entrypoints.openai.middleware import ApiKeyMiddleware, RequestIdMiddleware
from inference_engine.entrypoints.openai.offload import OffloadPool
from inference_engine.entrypoints.openai.request_prep import (RequestPrep,
                                                              default_max_prompt_bytes)
from inference_engine.entrypoints.openai.routes import add_routes
from inference_engine.entrypoints.openai.serving_chat import OpenAIServingChat
from inference_engine.entrypoints.openai.serving_completion import OpenAIServingCompletion
from inference_engine.entrypoints.openai.serving_embedding import OpenAIServingEmbedding
from inference_engine.entrypoints.openai.serving_models import ServedModels
from inference_engine.entrypoints.openai.serving_responses import OpenAIServingResponses
from inference_engine.entrypoints.openai.serving_score import OpenAIServingScore
from inference_engine.entrypoints.openai.serving_tokenization import OpenAIServingTokenization

logger = logging.getLogger(__name__)

# The waiting queue's default bound, per request a step may run (--max-num-seqs).
WAITING_PER_SEQ = 8
MAX_OFFLOAD_THREADS = 4
DEFAULT_MAX_PENDING_JOBS = 4096  # with no waiting bound: still not without end


def build_app(args: argparse.Namespace, engine=None) -> FastAPI:
    """The server for parsed serve flags; `engine` (an LLMEngine, used as it is) skips loading
    one."""
    if args.enable_auto_tool_choice and not args.tool_call_parser:
        raise ValueError("--enable-auto-tool-choice needs --tool-call-parser")
    loras = lora_requests_from(args)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        llm_engine = engine or await asyncio.to_thread(load_engine, args, loras)
        config = llm_engine.config
        registry = CollectorRegistry()
        metrics = Metrics(registry, config.cache_config, config.model_config.max_model_len)
        interval = float("inf") if args.disable_log_stats else args.log_stats_interval
        client = AsyncLLMEngine(llm_engine, StatLogger(metrics, interval),
                                admission_limits(args, config))
        # As many may be prepared at once as the engine would take.
        waiting = client.limits.max_waiting_requests
        prep = request_prep(args, llm_engine.tokenizer, config.model_config.max_model_len,
                            (waiting or DEFAULT_MAX_PENDING_JOBS)
                            + config.scheduler_config.max_num_seqs)
        name = config.model_config.served_model_name
        tool_parser = args.tool_call_parser if args.enable_auto_tool_choice else None
        common = {"prep": prep, "lora_requests": loras}
        state = app.state
        state.engine_client, state.registry = client, registry
        state.serving_completion = OpenAIServingCompletion(client, name, **common)
        state.serving_chat = OpenAIServingChat(client, name, tool_parser, args.reasoning_parser,
                                               **common)
        state.serving_tokenization = OpenAIServingTokenization(client, name, **common)
        state.serving_responses = OpenAIServingResponses(client, name, tool_parser,
                                                         args.reasoning_parser, **common)
        state.serving_embedding = OpenAIServingEmbedding(client, name, **common)
        state.serving_score = OpenAIServingScore(client, name, **common)
        state.served_models = ServedModels(client, name, loras, args.allow_runtime_lora_updating)
        client.start()
        if prep.sandbox is not None:
            await prep.sandbox.start()
        logger.info("serving %s (max_model_len=%d)", name, config.model_config.max_model_len)
        try:
            yield
        finally:
            await client.shutdown()
            prep.pool.shutdown()
            if prep.sandbox is not None:
                await prep.sandbox.close()
            logger.info("engine stopped")

    app = FastAPI(title="inference-engine", version=__version__, lifespan=lifespan)
    add_routes(app)
    app.add_exception_handler(OpenAIError, _openai_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Added innermost first: request id (outermost), CORS, body limits, the API key check.
    if args.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=args.api_key)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=args.max_request_body_bytes,
                       body_timeout=args.http_body_timeout)
    if args.allowed_origins:  # CORS only where the deployment opts in
        app.add_middleware(CORSMiddleware, allow_origins=args.allowed_origins,
                           allow_credentials=args.allow_credentials,
                           allow_methods=args.allowed_methods,
                           allow_headers=args.allowed_headers, expose_headers=["X-Request-Id"])
    app.add_middleware(RequestIdMiddleware)
    return app


def load_engine(args: argparse.Namespace, loras: dict):
    """The LLMEngine the flags name, with the server's chat template and the LoRA adapters
    read and checked (a bad adapter stops the start)."""
    from inference_engine.engine.llm_engine import LLMEngine
    llm_engine = LLMEngine.from_engine_args(engine_args_from(args))
    if args.chat_template and llm_engine.tokenizer is not None:  # requests' default
        llm_engine.tokenizer.chat_template = args.chat_template
    for lora in loras.values():
        llm_engine.add_lora(lora)
    return llm_engine


def admission_limits(args: argparse.Namespace, config) -> AdmissionLimits:
    waiting = args.max_waiting_requests
    if waiting is None:
        waiting = WAITING_PER_SEQ * config.scheduler_config.max_num_seqs
    return AdmissionLimits(max_waiting_requests=waiting or None, queue_timeout=args.queue_timeout,
                           stream_stall_timeout=args.stream_stall_timeout)


def request_prep(args: argparse.Namespace, tokenizer, max_model_len: int,
                 max_pending: int) -> RequestPrep:
    """The offload threads (at most `max_pending` jobs at once), the prompt size limit and (if
    trusted) the request-template sandbox."""
    max_bytes = args.max_prompt_bytes or default_max_prompt_bytes(max_model_len)
    pool = OffloadPool(min(MAX_OFFLOAD_THREADS, os.cpu_count() or 1), max_pending)
    sandbox = (ChatTemplateSandbox(args.request_chat_template_timeout, max_bytes)
               if args.trust_request_chat_template else None)
    return RequestPrep(tokenizer, pool, max_bytes, sandbox)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """Bad request bodies answer 400 in OpenAI's shape (FastAPI's default is a 422)."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return OpenAIError(400, f"the body is not valid JSON: {first.get('msg', '')}").to_response()
    loc, msg = first.get("loc", ()), first.get("msg", "invalid body")
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, RequestFieldError):  # a validator's own: it knows the field
        loc, msg = cause.loc, str(cause)
    param = ".".join(str(part) for part in loc if part != "body") or None
    message = f"{param}: {msg}" if param else str(msg)
    return OpenAIError(400, message, param=param).to_response()


async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
    return exc.to_response()


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = OpenAIError(exc.status_code, str(exc.detail)).to_response()
    response.headers.update(exc.headers or {})
    return response
