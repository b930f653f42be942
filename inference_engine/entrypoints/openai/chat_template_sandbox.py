"""Chat templates that a request brings (vLLM's `chat_template` field, with
--trust-request-chat-template) are code from the client: Jinja's sandbox keeps them from the
host, but not from looping for minutes or building gigabytes in one expression. So they render
in a child process (chat_template_child.py) with a memory cap, a time limit after which the
child is killed (and started again for the next one), and a cap on the rendered size.
"""
import asyncio
import json
import logging
import os
import sys

from inference_engine.entrypoints.openai.errors import OpenAIError, overloaded_error

logger = logging.getLogger(__name__)

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_template_child.py")
# What the child may allocate beyond its start-up size: ample for any real template's prompt.
CHILD_MEMORY_BYTES = 1 << 30
CHILD_START_TIMEOUT_S = 120.0


class ChatTemplateSandbox:
    """Renders one request template at a time in a child process: at most `timeout` seconds
    each (waiting for the child included), at most `max_chars` characters out."""

    def __init__(self, timeout: float, max_chars: int):
        self.timeout = timeout
        self.max_chars = max_chars
        self._child: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def render(self, **job) -> str:
        """The prompt that transformers' `render_jinja_template(**job)` makes of one
        conversation (`job` is JSON-able); OpenAIError 400 if the template fails, runs too long
        or makes too long a prompt."""
        try:
            await asyncio.wait_for(self._lock.acquire(), self.timeout)
        except TimeoutError:
            raise overloaded_error("request chat templates are queued") from None
        try:
            return await self._render_locked(job)
        finally:
            self._lock.release()

    async def _render_locked(self, job: dict) -> str:
        child = await self._started_child()
        child.stdin.write(json.dumps(job).encode() + b"\n")
        try:
            await child.stdin.drain()
            line = await asyncio.wait_for(child.stdout.readline(), self.timeout)
        except TimeoutError:
            await self._kill()
            raise OpenAIError(400, f"the chat template took longer than {self.timeout:g} s to "
                              "render", param="chat_template") from None
        except (ConnectionError, ValueError, asyncio.LimitOverrunError) as exc:
            await self._kill()
            raise OpenAIError(400, f"the chat template could not render: {exc}",
                              param="chat_template") from None
        if not line:  # the child died (killed by the kernel, say)
            await self._kill()
            raise OpenAIError(400, "the chat template crashed its renderer",
                              param="chat_template")
        reply = json.loads(line)
        if "error" in reply:
            raise OpenAIError(400, f"the chat template could not render the messages: "
                              f"{reply['error']}", param="chat_template")
        return reply["text"]

    async def start(self) -> None:
        """Starts the child now (it takes a second or two), so the first request doesn't wait."""
        async with self._lock:
            await self._started_child()

    async def _started_child(self) -> asyncio.subprocess.Process:
        if self._child is None or self._child.returncode is not None:
            # -P: the script's folder is not put on sys.path (its modules would shadow others).
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-P", _CHILD, str(CHILD_MEMORY_BYTES), str(self.max_chars),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                # A JSON line of max_chars characters: up to 6 bytes each as \\u escapes.
                limit=6 * self.max_chars + 4096)
            try:  # it says it is ready once it has imported the renderer
                ready = await asyncio.wait_for(child.stdout.readline(), CHILD_START_TIMEOUT_S)
            except TimeoutError:
                ready = b""
            if not ready:
                child.kill()
                await child.wait()
                raise OpenAIError(500, "the chat template renderer did not start")
            self._child = child
        return self._child

    async def _kill(self) -> None:
        child, self._child = self._child, None
        if child is not None and child.returncode is None:
            child.kill()
            await child.wait()

    async def close(self) -> None:
        async with self._lock:
            await self._kill()
