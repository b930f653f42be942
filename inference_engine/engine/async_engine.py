"""The async engine: an LLMEngine driven by one background loop, with a stream per request.

Only the loop touches the LLMEngine. Callers queue new requests and aborts in a RequestTracker;
the loop applies them between steps and runs each `step()` in a worker thread, so the event loop
keeps serving HTTP while the model runs. If the loop dies, the engine is dead: every open stream
and every later call gets AsyncEngineDeadError, so no client ever waits forever.

The engine returns each step's outputs already in the kind each request asked for (a server
streams deltas: a step's host work grows with the tokens it produced, not with everything
generated so far); the loop only hands them to their streams.
"""
import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from inference_engine.engine.admission import Admission, AdmissionLimits
from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.errors import AsyncEngineDeadError, EngineOverloadedError
from inference_engine.engine.request_tracker import RequestTracker
from inference_engine.engine_request import EngineRequest
from inference_engine.lora.request import LoRARequest
from inference_engine.outputs import RequestOutput

logger = logging.getLogger(__name__)

# Seconds without a request after which the memory a burst used is given back.
IDLE_BEFORE_RELEASE_S = 1.0


class AsyncLLMEngine:
    """Serves an LLMEngine to many concurrent callers of `generate()`.

    The engine's side: check_request / add_request / abort_request / step /
    has_unfinished_requests (and the counts and memory calls below).

    `stat_logger`, if given, is called after every pass of the loop as
    `stat_logger.log(engine, outputs, num_aborted)` with the pass's outputs (see
    engine/metrics.py). `limits` bound what may wait (see
    engine/admission.py); callers ask `check_admission` before they add requests.
    """

    def __init__(self, engine, stat_logger=None, limits: AdmissionLimits | None = None):
        self.engine = engine
        self.stat_logger = stat_logger
        self.limits = limits or AdmissionLimits()
        self._admission = Admission(self.limits)
        self._tracker: RequestTracker | None = None
        self._loop_task: asyncio.Task | None = None
        self._error: BaseException | None = None
        # One thread, so that steps never overlap and always run where the model was warmed up.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-step")
        # Requests are checked (a grammar compiled, say) beside the steps, off the event loop.
        self._checks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="request-checks")
        self._num_checking = 0

    @classmethod
    def from_engine_args(cls, args: EngineArgs, stat_logger=None) -> "AsyncLLMEngine":
        from inference_engine.engine.llm_engine import LLMEngine
        return cls(LLMEngine.from_engine_args(args), stat_logger)

    @property
    def tokenizer(self):
        return self.engine.tokenizer

    @property
    def config(self):
        return self.engine.config

    @property
    def is_running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def errored(self) -> bool:
        return self._error is not None

    @property
    def num_open_requests(self) -> int:
        return len(self._tracker) if self._tracker is not None else 0

    def num_waiting_requests(self, num_new: int = 0) -> int:
        """Of the requests being checked, queued for the loop, in the engine and `num_new` more,
        those a step can't run yet (beyond its max_num_seqs): those that would wait for others
        to finish."""
        queued = self._num_checking + (self._tracker.num_new if self._tracker is not None else 0)
        return self.engine.get_num_waiting_requests(queued + num_new)

    def check_admission(self, num_requests: int = 1) -> None:
        """Raises EngineOverloadedError if `num_requests` more can't be taken now (the waiting
        queue is full, or the server is shutting down); AsyncEngineDeadError if the loop died."""
        if self.errored:
            raise self._dead_error()
        self._admission.check(self.num_waiting_requests(num_requests), num_requests)

    async def drain(self, timeout: float) -> None:
        """For a shutdown: refuses new requests, lets the open ones finish for up to `timeout`
        seconds, then ends those left with EngineOverloadedError (a streamed answer then
        closes with an error event rather than being cut)."""
        self._admission.draining = True
        deadline = time.monotonic() + timeout
        while self.num_open_requests and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.num_open_requests:
            logger.warning("shutting down: aborting %d request(s) still open after %g s",
                           self.num_open_requests, timeout)
            self._tracker.abort_all(EngineOverloadedError(
                f"the server is shutting down; the request was stopped after {timeout:g} s"))

    def start(self) -> None:
        """Starts the background loop on the running event loop."""
        if self.errored:
            raise self._dead_error()
        if self.is_running:
            return
        self._tracker = RequestTracker()
        self._loop_task = asyncio.get_running_loop().create_task(self._run_loop(),
                                                                 name="engine-loop")

    async def shutdown(self) -> None:
        """Stops the loop; open streams end with AsyncEngineDeadError."""
        if self._loop_task is not None and not self._loop_task.done():
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False)
        self._checks.shutdown(wait=False, cancel_futures=True)

    def check_health(self) -> None:
        """Raises AsyncEngineDeadError if the loop has died or a worker rank is gone (then every
        later request would fail too, so the engine counts as dead even while idle)."""
        if not self.errored:
            try:
                self.engine.check_health()
            except Exception as exc:  # noqa: BLE001 - any worker failure means the engine is dead
                self._error = exc
        if self.errored:
            raise self._dead_error()

    async def generate(self, request: EngineRequest) -> AsyncIterator[RequestOutput]:
        """Yields the request's outputs in its output kind, the finished one last: its whole
        state after every step that added tokens (CUMULATIVE), only what is new each time
        (DELTA), or only the finished output (FINAL_ONLY). The request is checked first, on a
        thread of its own (engine/request_checks.py): a bad one raises before any output.

        Cancelling the caller (a client disconnect) or closing the iterator early aborts the
        request, which frees its KV blocks before the engine's next step.
        """
        self.start()
        if not request.checked:
            self._num_checking += 1
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._checks, self.engine.check_request, request)
            finally:
                self._num_checking -= 1
        stream = self._tracker.add_request(request)
        try:
            async for output in stream:
                yield output
        finally:
            self.abort(request.request_id)

    async def reset_prefix_cache(self) -> None:
        """Forgets every cached prompt prefix (requests running now keep their blocks)."""
        await self._between_steps(self.engine.reset_prefix_cache)

    async def add_lora(self, request: LoRARequest) -> None:
        """Reads and checks a LoRA adapter on every rank (LoRAError if it can't be served)."""
        await self._between_steps(self.engine.add_lora, request)

    async def remove_lora(self, lora_id: int) -> None:
        await self._between_steps(self.engine.remove_lora, lora_id)

    async def _between_steps(self, call, *args):
        """Runs an engine call on the step thread: between two steps, never inside one."""
        if self.errored:
            raise self._dead_error()
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    def abort(self, request_id: str) -> None:
        if self._tracker is not None:
            self._tracker.abort_request(request_id)

    def _dead_error(self) -> AsyncEngineDeadError:
        error = AsyncEngineDeadError(f"the engine loop has stopped: {self._error!r}")
        error.__cause__ = self._error
        return error

    async def _run_loop(self) -> None:
        tracker = self._tracker
        try:
            worked = False  # since memory was last given back
            while True:
                if not self.engine.has_unfinished_requests():
                    idle_for = IDLE_BEFORE_RELEASE_S if worked else None
                    if not await tracker.wait_for_work(idle_for):
                        await asyncio.get_running_loop().run_in_executor(
                            self._executor, self.engine.release_idle_memory)
                        worked = False
                        continue
                worked = True
                await self._step_once(tracker)
        except asyncio.CancelledError:
            self._error = RuntimeError("the engine was shut down")
            tracker.fail_all(self._dead_error())
            raise
        except BaseException as exc:
            logger.exception("the engine loop died; the server can no longer serve requests")
            self._error = exc
            tracker.fail_all(self._dead_error())

    async def _step_once(self, tracker: RequestTracker) -> None:
        if self.limits.queue_timeout is not None:
            self._give_up_queued(tracker, self.limits.queue_timeout)
        new, aborted = tracker.get_new_and_aborted_requests()
        for stream, request in new:
            try:
                self.engine.add_request(request)
            except Exception as exc:  # a bad request fails alone; the engine is fine
                tracker.fail_request(stream.request_id, exc)
        if aborted:
            self.engine.abort_request(aborted)
            logger.info("aborted request(s) %s", ", ".join(sorted(aborted)))
        outputs: list[RequestOutput] = []
        if self.engine.has_unfinished_requests():
            loop = asyncio.get_running_loop()
            outputs = await loop.run_in_executor(
                self._executor, self.engine.step)
            tracker.process_step(outputs, self.limits.stream_stall_timeout)
        if self.stat_logger is not None:
            try:
                self.stat_logger.log(self.engine, outputs, len(aborted))
            except Exception:  # a metrics bug must not take the engine down with it
                logger.exception("recording engine stats failed")

    def _give_up_queued(self, tracker: RequestTracker, timeout: float) -> None:
        """Aborts the requests that waited over `timeout` seconds without being scheduled."""
        for request_id in self.engine.unscheduled_request_ids(time.time() - timeout):
            tracker.abort_request(request_id, EngineOverloadedError(
                f"the request waited over {timeout:g} s in the queue (--queue-timeout)"))
