"""The server's middleware: a request id on every request, its response and its log lines;
the API key check."""
import logging
import secrets
import uuid
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders

from inference_engine.entrypoints.openai.errors import OpenAIError

logger = logging.getLogger("inference_engine.entrypoints.openai.api_server")
# The id of the HTTP request being served, for log lines (each request runs in its own context).
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdMiddleware:
    """Gives every request an id (its X-Request-Id header, or a new one), returns it in the
    X-Request-Id response header, puts it on log lines, and turns an unhandled error into a
    500 in OpenAI's shape."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if given.isprintable() and 0 < len(given) <= 128 else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = False

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            logger.exception("unhandled error")
            if started:
                raise
            await OpenAIError(500, f"internal error: {exc!r}").to_response()(
                scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


# The routes open without the API key: what probes and scrapers read, and nothing that computes
# on a request's content. Every other path needs the key, unknown ones included.
OPEN_PATHS = frozenset({"/health", "/ping", "/metrics", "/version"})


class ApiKeyMiddleware:
    """401 on every route but the open ones without `Authorization: Bearer <key>` (CORS
    preflights pass)."""

    def __init__(self, app, api_key: str):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and scope["method"] != "OPTIONS"
                and scope["path"] not in OPEN_PATHS):
            given = Headers(scope=scope).get("authorization", "").encode()
            if not secrets.compare_digest(given, self.expected):
                error = OpenAIError(401, "Incorrect or missing API key; send it as "
                                    "`Authorization: Bearer <key>`.", code="invalid_api_key")
                return await error.to_response()(scope, receive, send)
        await self.app(scope, receive, send)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the HTTP request being served, or '-') to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
