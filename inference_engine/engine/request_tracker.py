"""The async engine's side of its requests: a stream per request, and the tracker where callers
queue new requests and aborts for the loop to apply between steps (engine/async_engine.py)."""
import asyncio
import time
from collections import deque

from inference_engine.engine_request import EngineRequest
from inference_engine.errors import StreamStalledError
from inference_engine.outputs import RequestOutput

_END = object()  # closes a stream without an error


class AsyncStream:
    """The outputs of one request in the order the loop produced them. Iteration ends after the
    finished output or an abort, and raises the error the request (or the engine) failed with.

    A deque and one waiter future rather than an asyncio.Queue: every step puts into every open
    stream, and the queue's bookkeeping is paid on the event loop the engine thread shares."""

    def __init__(self, request_id: str):
        self.request_id = request_id
        self.finished = False
        # Since when (time.monotonic()) outputs wait that the reader has not taken; None when
        # it has taken them all. A reader taking some but not all counts as reading.
        self.unread_since: float | None = None
        self._items: deque = deque()
        self._waiter: asyncio.Future | None = None

    def put(self, output: RequestOutput) -> None:
        if not self.finished:
            self._push(output)

    def finish(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self.finished = True
            self._push(_END if error is None else error)

    def _push(self, item) -> None:
        if not self._items:
            self.unread_since = time.monotonic()
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> RequestOutput:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        self.unread_since = time.monotonic() if self._items else None
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item


class RequestTracker:
    """The open streams, plus the adds and aborts waiting for the loop to apply them."""

    def __init__(self):
        self._streams: dict[str, AsyncStream] = {}
        self._new: list[tuple[AsyncStream, EngineRequest]] = []
        self._aborted: set[str] = set()
        self._work = asyncio.Event()

    def __len__(self) -> int:
        return len(self._streams)

    def add_request(self, request: EngineRequest) -> AsyncStream:
        if request.request_id in self._streams:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        stream = AsyncStream(request.request_id)
        self._streams[request.request_id] = stream
        self._new.append((stream, request))
        self._work.set()
        return stream

    @property
    def num_new(self) -> int:
        """Requests added since the loop last took the new ones."""
        return len(self._new)

    def abort_request(self, request_id: str, error: BaseException | None = None) -> None:
        """Closes the request's stream (ending it with `error`, if given); the loop drops it
        from the engine before the next step."""
        stream = self._streams.pop(request_id, None)
        if stream is None:
            return  # finished or aborted already
        stream.finish(error)
        self._aborted.add(request_id)
        self._work.set()

    def abort_all(self, error: BaseException) -> None:
        """Aborts every open request, ending its stream with `error` (the engine lives on)."""
        for request_id in list(self._streams):
            self.abort_request(request_id, error)

    def process_step(self, outputs: list[RequestOutput],
                     stall_timeout: float | None = None) -> None:
        """Hands each stream its output of the step that just ended (of aborted requests:
        ignored), and ends the finished ones. A stream whose reader has left outputs untaken for
        over `stall_timeout` seconds is aborted."""
        for output in outputs:
            stream = self._streams.get(output.request_id)
            if stream is None:
                continue
            stream.put(output)
            if output.finished:
                del self._streams[output.request_id]
                stream.finish()
        if stall_timeout:
            stalled_before = time.monotonic() - stall_timeout
            for request_id, stream in list(self._streams.items()):
                if stream.unread_since is not None and stream.unread_since < stalled_before:
                    self.abort_request(request_id, StreamStalledError(
                        f"request {request_id} aborted: its outputs were not read for over "
                        f"{stall_timeout:g} s"))

    def fail_request(self, request_id: str, error: BaseException) -> None:
        stream = self._streams.pop(request_id, None)
        if stream is not None:
            stream.finish(error)

    def fail_all(self, error: BaseException) -> None:
        """Ends every open stream with `error` (the engine died or shut down)."""
        for stream in self._streams.values():
            stream.finish(error)
        self._streams.clear()
        self._new.clear()

    def get_new_and_aborted_requests(self) -> tuple[list[tuple[AsyncStream, EngineRequest]],
                                                    set[str]]:
        # A request aborted before the engine saw it has a finished stream: skip it.
        new = [(stream, request) for stream, request in self._new if not stream.finished]
        aborted = self._aborted
        self._new, self._aborted = [], set()
        self._work.clear()
        return new, aborted

    async def wait_for_work(self, timeout: float | None = None) -> bool:
        """Waits until a request is added or aborted; False if `timeout` seconds pass first."""
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            return False
        return True
