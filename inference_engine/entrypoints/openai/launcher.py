"""`inference-engine serve`: the app under uvicorn.

The port is taken before the model loads (a port in use is reported at once, not after minutes
of loading), and the model loads before uvicorn starts, so that a wrong path, a bad adapter or
Ctrl-C while loading end with one line and a non-zero exit. On SIGTERM (or Ctrl-C) the server
stops accepting, lets open requests run for --shutdown-timeout seconds, then ends the ones left
with an error (a stream gets its error event and [DONE], never a cut connection).
"""
import argparse
import asyncio
import logging
import socket
import sys

import uvicorn

from inference_engine.entrypoints.openai.api_server import build_app, load_engine
from inference_engine.entrypoints.openai.cli_args import lora_requests_from
from inference_engine.entrypoints.openai.http_limits import http_protocol
from inference_engine.entrypoints.openai.middleware import RequestIdFilter

logger = logging.getLogger("inference_engine.entrypoints.openai.api_server")

# uvicorn's own shutdown deadline comes this long after ours, which ends the requests left: the
# time for their error events to be written.
SHUTDOWN_GRACE_S = 5.0


def uvicorn_config(app, args: argparse.Namespace, **overrides) -> uvicorn.Config:
    """The uvicorn settings of the serve flags (`overrides` for tests)."""
    settings = dict(host=args.host, port=args.port, log_config=None,
                    log_level=args.uvicorn_log_level, http=http_protocol(args.http_header_timeout),
                    timeout_graceful_shutdown=args.shutdown_timeout + SHUTDOWN_GRACE_S)
    return uvicorn.Config(app, **{**settings, **overrides})


class DrainingServer(uvicorn.Server):
    """A uvicorn server that, on the first exit signal, has the engine drain its requests."""

    def __init__(self, config: uvicorn.Config, app, shutdown_timeout: float):
        super().__init__(config)
        self.app, self.shutdown_timeout = app, shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig, frame) -> None:
        if not self.should_exit and self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_draining)
        super().handle_exit(sig, frame)

    def _start_draining(self) -> None:
        client = getattr(self.app.state, "engine_client", None)
        if client is not None:
            self._loop.create_task(client.drain(self.shutdown_timeout))


def run_server(args: argparse.Namespace) -> None:
    """Serves until SIGINT/SIGTERM; start-up failures print one line and exit 1 (130 for
    Ctrl-C while loading)."""
    _configure_logging()
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    logger.info("loading %s (the port is %s:%d)", args.model_tag or args.model or "the embedded "
                "model", args.host, args.port)
    try:
        app = build_app(args, load_engine(args, lora_requests_from(args)))
    except KeyboardInterrupt:
        _fail("interrupted while loading the model", 130)
    except Exception as exc:  # noqa: BLE001 - whatever stops the start is reported in one line
        logger.debug("start-up failed", exc_info=exc)
        _fail(f"could not start the server: {type(exc).__name__}: {exc}")
    server = DrainingServer(uvicorn_config(app, args), app, args.shutdown_timeout)
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """The listening address, bound now (uvicorn starts listening on it once the model is in;
    until then connections are refused rather than queued)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _fail(message: str, code: int = 1):
    logger.error(message)
    sys.exit(code)


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    for handler in root.handlers:
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter(
            "%(levelname)s %(asctime)s %(name)s [%(request_id)s]: %(message)s"))
