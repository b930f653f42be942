"""Run the OpenAI-compatible server for tests: in a thread of the test process (its engine stays
reachable for assertions) or as the real `inference-engine serve` in a subprocess."""
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import uvicorn

# Small enough to load quickly and to make over-long prompts cheap to build.
SERVER_ARGS = ["--max-model-len", "512", "--cpu-kv-cache-space-gib", "0.25", "--dtype", "float32",
               "--trust-request-chat-template"]
STARTUP_TIMEOUT = 300.0


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers that bind it themselves)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def engine_idle(server) -> bool:
    """No request left in a ServerThread's engine and every KV block free."""
    engine = server.engine_client.engine
    free = engine.scheduler.block_manager.get_num_free_blocks()
    return not engine.has_unfinished_requests() and free == engine.config.cache_config.num_blocks


class ServerThread:
    """`build_app(args, engine)` under uvicorn in a daemon thread, on a socket bound up front
    (so no other process can take the port in between)."""

    def __init__(self, cli_args: list[str], engine=None):
        from inference_engine.entrypoints.openai.api_server import build_app
        from inference_engine.entrypoints.openai.cli_args import make_arg_parser
        from inference_engine.entrypoints.openai.launcher import uvicorn_config
        self.args = make_arg_parser().parse_args(cli_args)
        self.app = build_app(self.args, engine)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(self.app, self.args, log_level="warning",
                                                    timeout_graceful_shutdown=5))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]},
                                        daemon=True, name=f"server-{self.port}")

    def start(self) -> "ServerThread":
        self._thread.start()
        wait_until(lambda: self.server.started or not self._thread.is_alive(),
                   STARTUP_TIMEOUT, 0.1, "server startup")
        if not self.server.started:
            raise RuntimeError("the server failed to start; see the log above")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    @property
    def engine_client(self):
        """The AsyncLLMEngine (its `.engine` is the LLMEngine)."""
        return self.app.state.engine_client

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ServerProcess:
    """`python -m inference_engine.entrypoints.cli serve ...` on a free port; output in `log`."""

    def __init__(self, cli_args: list[str], log_path: str, port: int | None = None,
                 env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "inference_engine.entrypoints.cli", "serve",
                   "--host", "127.0.0.1", "--port", str(self.port), *cli_args]
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env)

    def wait_ready(self) -> "ServerProcess":
        def ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n"
                                   f"{self.log}")
            try:
                return httpx.get(self.url + "/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        wait_until(ready, STARTUP_TIMEOUT, 0.2, "server health")
        return self

    @property
    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()
