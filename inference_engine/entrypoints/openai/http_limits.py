"""Limits on what one client can make the server hold: the size of a request body and the time
to receive it (`BodyLimitMiddleware`), and the time to receive a request's line and headers (the
uvicorn protocol from `http_protocol`)."""
import asyncio
import logging

import anyio
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from inference_engine.entrypoints.openai.errors import OpenAIError

logger = logging.getLogger(__name__)

# What the app hears of a request cut off: the same as of a client that went away.
DISCONNECT = {"type": "http.disconnect"}


class BodyLimitMiddleware:
    """Answers 413 to a request body over `max_body_bytes` (at once when its Content-Length says
    so, else as soon as the bytes received pass it) and 408 to one not received whole within
    `body_timeout` seconds of the request's start, and closes the connection. The app sees such
    a request as one whose client went away, and never more than `max_body_bytes` of its body.
    Once the body is complete `receive` is the server's own again, so a streaming response's
    wait for the client's disconnect is not timed."""

    def __init__(self, app, max_body_bytes: int, body_timeout: float):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = LimitedBody(scope, receive, send, self.max_body_bytes, self.body_timeout)
        if (body.declared_length or 0) > self.max_body_bytes:
            return await body.refuse_too_large()
        try:
            await self.app(scope, body.receive, body.send)
        except ClientDisconnect:
            if not body.cut_off:
                raise  # a real disconnect is the server's to report; ours is answered already


class LimitedBody:
    """One request's body as the app receives it: counted, timed, and cut off at the limits.
    Once cut off, the app's `receive` says the client went away and its `send` goes nowhere
    (as for a client that did), unless its response had already started: then that response
    goes on, and closes the connection when done (see `send`)."""

    def __init__(self, scope, receive, send, max_bytes: int, timeout: float):
        self.scope, self._receive, self._send = scope, receive, send
        self.max_bytes, self.timeout = max_bytes, timeout
        self.deadline = anyio.current_time() + timeout
        headers = Headers(scope=scope)
        self.declared_length = _content_length(headers)
        # An HTTP/1.1 request has a body only when a Content-Length or Transfer-Encoding says so.
        self.complete = not (self.declared_length or "transfer-encoding" in headers)
        self.received = 0
        self.response_started = False
        self.cut_off = False  # the app was told its client went away
        self.answered = False  # and the client got our error in the app's stead

    async def receive(self):
        if self.cut_off:
            return DISCONNECT
        if self.complete:
            return await self._receive()
        remaining = self.deadline - anyio.current_time()
        message = None
        if remaining > 0:
            with anyio.move_on_after(remaining):
                message = await self._receive()
        if message is None:
            await self._refuse(408, f"The request body was not received within "
                                    f"{self.timeout:g} s.", "request_timeout")
            return DISCONNECT
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                await self.refuse_too_large()
                return DISCONNECT
            self.complete = not message.get("more_body", False)
        return message

    async def send(self, message):
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
            if not self.complete:
                # Keeping the connection would mean reading the rest of the body, unbounded in
                # size and time, only to throw it away; closing it bounds both.
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"connection", b"close")]}
        await self._send(message)

    async def refuse_too_large(self) -> None:
        """Answers 413 (if the response has not started) and cuts the body off."""
        await self._refuse(413, f"The request body is over the limit of {self.max_bytes} "
                                "bytes.", "request_too_large")

    async def _refuse(self, status: int, message: str, code: str) -> None:
        self.cut_off = True
        if not self.response_started:
            await OpenAIError(status, message, code=code).to_response()(
                self.scope, self._receive, self.send)
            self.answered = True


def _content_length(headers: Headers) -> int | None:
    """The Content-Length a request declares, or None (absent or malformed: the HTTP parser
    rejects the latter before the app is called)."""
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


class HeaderTimeoutMixin:
    """For uvicorn's httptools protocol: closes a connection whose request line and headers are
    not complete within `header_timeout` seconds of that request's first byte (the parser calls
    `on_message_begin` there and `on_headers_complete` after the headers), or that sends nothing
    that long after it opens. uvicorn itself times only the idle time between requests."""

    header_timeout: float
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._start_header_timer()

    def on_message_begin(self):
        super().on_message_begin()
        self._start_header_timer()

    def on_headers_complete(self):
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc):
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self):
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_timed_out)

    def _cancel_header_timer(self):
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self):
        self._header_timer = None
        # uvicorn's graceful close: at once, unless a request pipelined before the late one is
        # still being answered; then right after its response.
        self.shutdown()


def http_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """The protocol class to pass as `uvicorn.Config(http=...)`: uvicorn's httptools protocol
    with `HeaderTimeoutMixin`; without httptools, uvicorn's h11 protocol, headers untimed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is an optional extra of uvicorn
        logger.warning("httptools is not installed: serving HTTP with h11, which does not time "
                       "request headers (a client sending them slowly holds its connection)")
        from uvicorn.protocols.http.h11_impl import H11Protocol
        return H11Protocol
    return type("HeaderTimeoutProtocol", (HeaderTimeoutMixin, HttpToolsProtocol),
                {"header_timeout": header_timeout})
