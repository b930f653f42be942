"""A few threads for the CPU work a request's content decides (tokenizing, rendering the chat
template, decoding token ids, compiling a grammar), so that none of it runs on the event loop:
health checks, metrics and every other client's stream keep being served meanwhile.

The tokenizers release the GIL while they encode, and Jinja is Python, which the interpreter
switches away from every few milliseconds, so the loop gets its turns. Jobs beyond the threads
wait in a bounded queue; a job that finds it full is refused (503), not queued without end.
"""
import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from inference_engine.entrypoints.openai.errors import overloaded_error


class OffloadPool:
    """Runs `fn(*args, **kwargs)` on one of `num_threads` threads; at most `max_pending` jobs
    may be running or waiting at once."""

    def __init__(self, num_threads: int, max_pending: int):
        self.max_pending = max_pending
        self._pending = 0
        self._executor = ThreadPoolExecutor(max_workers=num_threads,
                                            thread_name_prefix="request-work")

    async def run(self, fn, *args, **kwargs):
        if self._pending >= self.max_pending:
            raise overloaded_error(f"{self._pending} requests are being prepared")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(fn, *args, **kwargs))
        finally:
            self._pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
