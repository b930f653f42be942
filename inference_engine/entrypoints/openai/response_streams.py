"""Answering with an engine's outputs: Server-Sent Events, several requests' outputs merged
as they come, and the final outputs of a whole (non-streamed) answer, given up when the client
leaves."""
import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import Request

from inference_engine.entrypoints.openai.errors import engine_error
from inference_engine.outputs import RequestOutput


def sse(payload) -> str:
    """One Server-Sent Event carrying a pydantic model."""
    return f"data: {payload.model_dump_json()}\n\n"


SSE_DONE = "data: [DONE]\n\n"


async def merge_async_iterators(*iterators: AsyncGenerator) -> AsyncIterator[tuple[int, object]]:
    """Yields `(i, item)` from several async iterators as items arrive. Closing the merged
    iterator cancels the inner ones (which aborts their requests)."""
    if len(iterators) == 1:
        # The common case (one prompt) without a task and a queue per request: both would cost
        # an extra event-loop wake-up for every token streamed.
        try:
            async for item in iterators[0]:
                yield 0, item
        finally:
            await iterators[0].aclose()
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def drain(i: int, iterator: AsyncIterator) -> None:
        try:
            async for item in iterator:
                queue.put_nowait((i, item))
        except Exception as exc:
            queue.put_nowait((i, exc))
        queue.put_nowait((i, done))

    tasks = [asyncio.create_task(drain(i, it)) for i, it in enumerate(iterators)]
    try:
        remaining = len(tasks)
        while remaining:
            i, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _wait_for_disconnect(raw_request: Request) -> None:
    # The body has been read, so the next ASGI message can only be the disconnect.
    while (await raw_request.receive())["type"] != "http.disconnect":
        pass


async def started_stream(outputs: AsyncGenerator, raw_request: Request
                         ) -> AsyncIterator | None:
    """`outputs` once the first has come, or None if the client left before (the requests are
    then aborted). A stream answers 200 only when its request has run: one refused or given up
    while queued (overloaded, a queue timeout) answers with its own status instead."""
    first = asyncio.ensure_future(anext(outputs, _NOTHING))
    watcher = asyncio.create_task(_wait_for_disconnect(raw_request))
    try:
        await asyncio.wait({first, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not first.done():
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await outputs.aclose()
        return None
    try:
        item = first.result()
    except Exception as exc:
        await outputs.aclose()
        raise engine_error(exc) from exc
    return outputs if item is _NOTHING else _prepended(item, outputs)


_NOTHING = object()


async def _prepended(item, outputs: AsyncGenerator) -> AsyncIterator:
    try:
        yield item
        async for item in outputs:
            yield item
    finally:
        await outputs.aclose()


async def collect_final_outputs(outputs: AsyncIterator[tuple[int, RequestOutput]],
                                raw_request: Request) -> dict[int, RequestOutput] | None:
    """The last output of every request, or None if the client disconnected first (the
    requests are then aborted). A request's failure is raised as its OpenAI error."""
    final: dict[int, RequestOutput] = {}

    async def consume() -> None:
        async for i, output in outputs:
            final[i] = output

    consumer = asyncio.create_task(consume())
    watcher = asyncio.create_task(_wait_for_disconnect(raw_request))
    try:
        await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        consumer.cancel()
        raise
    finally:
        watcher.cancel()
    if not consumer.done():
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        return None
    try:
        consumer.result()  # re-raises the request's error
    except Exception as exc:
        raise engine_error(exc) from exc
    return final
