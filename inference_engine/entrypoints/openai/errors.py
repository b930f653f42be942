"""OpenAI-shaped errors, `{"error": {message, type, param, code}}`, and the one place that
maps what a request failed with onto them."""
import json
import logging

from fastapi.responses import JSONResponse

from inference_engine.entrypoints.openai.protocol_utility import ErrorInfo, ErrorResponse
from inference_engine.errors import AsyncEngineDeadError, EngineOverloadedError, StreamStalledError

logger = logging.getLogger(__name__)

# Seconds a refused client is asked to wait (OpenAI's SDKs honour Retry-After when they retry).
RETRY_AFTER_S = 1


class OpenAIError(Exception):
    """An error to answer with OpenAI's body; `headers` go on the response."""

    def __init__(self, status_code: int, message: str, param: str | None = None,
                 code: str | None = None, type: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers
        self.info = ErrorInfo(message=message, param=param, code=code,
                              type=type or ("invalid_request_error" if status_code < 500
                                            else "server_error"))

    def to_response(self) -> JSONResponse:
        return JSONResponse(ErrorResponse(error=self.info).model_dump(),
                            status_code=self.status_code, headers=self.headers)

    def to_sse(self) -> str:
        return f"data: {json.dumps(ErrorResponse(error=self.info).model_dump())}\n\n"


def overloaded_error(reason: str) -> OpenAIError:
    """503 with Retry-After: the server can't take the request now, but may soon."""
    return OpenAIError(503, f"The server is overloaded ({reason}); retry later.",
                       code="overloaded", headers={"Retry-After": str(RETRY_AFTER_S)})


def engine_error(exc: BaseException) -> OpenAIError:
    """The OpenAI error for an exception raised while a request ran in the engine."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, AsyncEngineDeadError):
        return OpenAIError(500, str(exc), code="engine_dead")
    if isinstance(exc, EngineOverloadedError):
        return overloaded_error(str(exc))
    if isinstance(exc, StreamStalledError):
        return OpenAIError(408, str(exc), code="stream_stalled")
    if isinstance(exc, ValueError):  # the engine rejected the request itself
        return OpenAIError(400, str(exc), param=getattr(exc, "param", None))
    logger.error("request failed: %r", exc, exc_info=exc)
    return OpenAIError(500, f"internal error: {exc!r}")
