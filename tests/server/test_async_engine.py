"""AsyncLLMEngine's contract, on a scripted engine (no model): streams in each output kind,
aborts, per-request errors, the dead state, and its admission limits (a bounded waiting
queue, readers that stop reading, draining for a shutdown)."""
import asyncio
import threading

import pytest

from inference_engine.engine.admission import AdmissionLimits
from inference_engine.engine_request import EngineRequest
from inference_engine.engine.async_engine import IDLE_BEFORE_RELEASE_S, AsyncLLMEngine
from inference_engine.errors import (AsyncEngineDeadError, EngineOverloadedError,
                                            StreamStalledError)
from inference_engine.outputs import OutputCursor, RequestOutput, RequestOutputKind
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus

PARAMS = SamplingParams(max_tokens=3)


class XText:
    """A detokenizer whose text is one "x" per generated token."""

    def __init__(self, seq: Sequence):
        self.seq = seq

    def text(self, finished: bool) -> str:
        return "x" * len(self.seq.output_token_ids)


class ScriptedEngine:
    """Every request gets one more token (and character) per step and finishes after `length`
    steps. Requests live in `requests` as real SequenceGroups, as in LLMEngine."""

    def __init__(self, length: int = 3):
        self.length = length
        self.requests: dict[str, SequenceGroup] = {}
        self.aborted: list[str] = []
        self.fail = False
        self.thread_names: set[str] = set()
        self.num_waiting = 0  # what get_num_waiting_requests says
        self.num_releases = 0  # calls of release_idle_memory

    def check_request(self, request: EngineRequest):
        if request.prompt == "bad":
            raise ValueError("bad prompt")

    def add_request(self, request: EngineRequest):
        seq = Sequence(len(self.requests), [1])
        seq.detokenizer = XText(seq)
        seq.status = SequenceStatus.RUNNING
        group = SequenceGroup(request.request_id, request.prompt, [1], request.params, seq)
        group.output_cursor = OutputCursor(group, request.output_kind)
        self.requests[request.request_id] = group

    def check_health(self):
        pass

    def abort_request(self, request_ids):
        for request_id in [request_ids] if isinstance(request_ids, str) else request_ids:
            self.requests.pop(request_id, None)
            self.aborted.append(request_id)

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def get_num_waiting_requests(self, num_new: int = 0) -> int:
        return self.num_waiting + num_new

    def release_idle_memory(self):
        self.num_releases += 1

    def step(self) -> list[RequestOutput]:
        """Each output in its request's kind, as LLMEngine.step cuts them."""
        self.thread_names.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("boom")
        outputs = []
        for request_id, group in list(self.requests.items()):
            seq = group.seqs[0]
            seq.append_token(7, 0.0)
            final = None
            if len(seq.output_token_ids) == self.length:
                seq.status = SequenceStatus.FINISHED_LENGTH_CAPPED
                del self.requests[request_id]
                final = RequestOutput.from_seq_group(group)
            output = group.output_cursor.next(final)
            if output is not None:
                outputs.append(output)
        return outputs


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=30))


async def collect(engine: AsyncLLMEngine, request_id: str, prompt: str = "p",
                  kind: RequestOutputKind = RequestOutputKind.CUMULATIVE) -> list[str]:
    return [o.outputs[0].text async for o in engine.generate(
        EngineRequest(request_id, prompt, PARAMS, output_kind=kind))]


def test_each_request_streams_its_outputs_until_finished():
    async def main():
        engine = AsyncLLMEngine(ScriptedEngine())
        results = await asyncio.gather(*(collect(engine, f"r{i}") for i in range(5)))
        await engine.shutdown()
        return results, engine

    results, engine = run(main())
    assert results == [["x", "xx", "xxx"]] * 5
    assert engine.engine.thread_names and all(
        name.startswith("engine-step") for name in engine.engine.thread_names)


def test_output_kinds_stream_deltas_or_the_final_output_only():
    async def main():
        engine = AsyncLLMEngine(ScriptedEngine())
        outputs = await asyncio.gather(
            collect(engine, "delta", kind=RequestOutputKind.DELTA),
            collect(engine, "final", kind=RequestOutputKind.FINAL_ONLY),
            collect(engine, "whole", kind=RequestOutputKind.CUMULATIVE))
        await engine.shutdown()
        return outputs

    assert run(main()) == [["x", "x", "x"], ["xxx"], ["x", "xx", "xxx"]]


def test_closing_a_stream_aborts_its_request_only():
    async def main():
        scripted = ScriptedEngine(length=1000)
        engine = AsyncLLMEngine(scripted)
        other = asyncio.create_task(anext(engine.generate(EngineRequest("keep", "p", PARAMS))))
        stream = engine.generate(EngineRequest("drop", "p", PARAMS))
        await anext(stream)
        await stream.aclose()
        while "drop" in scripted.requests:
            await asyncio.sleep(0.01)
        await other
        assert "keep" in scripted.requests and scripted.aborted == ["drop"]
        await engine.shutdown()

    run(main())


def test_cancelling_the_caller_aborts_the_request():
    async def main():
        scripted = ScriptedEngine(length=1000)
        engine = AsyncLLMEngine(scripted)
        task = asyncio.create_task(collect(engine, "r"))
        while not scripted.requests:
            await asyncio.sleep(0.01)
        task.cancel()
        while "r" in scripted.requests:
            await asyncio.sleep(0.01)
        assert engine.num_open_requests == 0
        await engine.shutdown()

    run(main())


def test_a_rejected_request_fails_alone():
    async def main():
        engine = AsyncLLMEngine(ScriptedEngine())
        with pytest.raises(ValueError, match="bad prompt"):
            await collect(engine, "bad", "bad")
        assert await collect(engine, "good") == ["x", "xx", "xxx"]
        engine.check_health()
        await engine.shutdown()

    run(main())


def test_a_failing_step_kills_the_engine_and_every_request():
    async def main():
        scripted = ScriptedEngine(length=1000)
        engine = AsyncLLMEngine(scripted)
        tasks = [asyncio.create_task(collect(engine, f"r{i}")) for i in range(3)]
        while len(scripted.requests) < 3:
            await asyncio.sleep(0.01)
        scripted.fail = True
        for task in tasks:
            with pytest.raises(AsyncEngineDeadError):
                await task
        assert engine.errored
        with pytest.raises(AsyncEngineDeadError):
            engine.check_health()
        with pytest.raises(AsyncEngineDeadError):
            await collect(engine, "late")
        await engine.shutdown()

    run(main())


def test_shutdown_ends_open_streams_with_an_error():
    async def main():
        scripted = ScriptedEngine(length=1000)
        engine = AsyncLLMEngine(scripted)
        task = asyncio.create_task(collect(engine, "r"))
        while not scripted.requests:
            await asyncio.sleep(0.01)
        await engine.shutdown()
        with pytest.raises(AsyncEngineDeadError):
            await task

    run(main())


def test_admission_refuses_requests_past_the_waiting_bound():
    scripted = ScriptedEngine()
    engine = AsyncLLMEngine(scripted, limits=AdmissionLimits(max_waiting_requests=4))
    scripted.num_waiting = 3
    engine.check_admission(1)
    with pytest.raises(EngineOverloadedError, match="3 requests are waiting"):
        engine.check_admission(2)
    AsyncLLMEngine(scripted).check_admission(10**6)  # no bound by default
    with pytest.raises(ValueError, match="positive"):
        AdmissionLimits(queue_timeout=0)


def test_a_stream_nobody_reads_is_aborted_after_the_stall_timeout():
    async def main():
        scripted = ScriptedEngine(length=10**6)
        engine = AsyncLLMEngine(scripted, limits=AdmissionLimits(stream_stall_timeout=0.3))
        stream = engine.generate(EngineRequest("r", "p", PARAMS,
                                               output_kind=RequestOutputKind.DELTA))
        await anext(stream)
        reader = engine.generate(EngineRequest("read", "p", PARAMS,
                                               output_kind=RequestOutputKind.DELTA))
        stalled = asyncio.get_running_loop().time()
        while "r" in scripted.requests:  # a reader that keeps up is never stalled
            await anext(reader)
        assert asyncio.get_running_loop().time() - stalled >= 0.3
        assert scripted.aborted == ["r"] and "read" in scripted.requests
        with pytest.raises(StreamStalledError):  # what was pending, then the error
            async for _ in stream:
                pass
        await reader.aclose()
        await engine.shutdown()

    run(main())


def test_drain_refuses_new_requests_then_ends_the_open_ones_with_an_error():
    async def main():
        scripted = ScriptedEngine(length=10**6)
        engine = AsyncLLMEngine(scripted)
        task = asyncio.create_task(collect(engine, "r"))
        while not scripted.requests:
            await asyncio.sleep(0.01)
        drain = asyncio.create_task(engine.drain(0.2))
        await asyncio.sleep(0)
        with pytest.raises(EngineOverloadedError, match="shutting down"):
            engine.check_admission()
        assert not task.done()  # the open request runs on until the drain timeout
        with pytest.raises(EngineOverloadedError, match="shutting down"):
            await task
        await drain
        while scripted.requests:
            await asyncio.sleep(0.01)
        assert scripted.aborted == ["r"] and engine.num_open_requests == 0
        await engine.shutdown()

    run(main())


def test_memory_is_released_once_after_a_second_idle():
    async def main():
        scripted = ScriptedEngine()
        engine = AsyncLLMEngine(scripted)
        await collect(engine, "r")
        assert scripted.num_releases == 0  # not while requests come
        await asyncio.sleep(IDLE_BEFORE_RELEASE_S + 0.5)
        assert scripted.num_releases == 1
        await asyncio.sleep(IDLE_BEFORE_RELEASE_S + 0.5)
        assert scripted.num_releases == 1  # once per burst, not every second
        await collect(engine, "again")
        await asyncio.sleep(IDLE_BEFORE_RELEASE_S + 0.5)
        assert scripted.num_releases == 2
        await engine.shutdown()

    run(main())
