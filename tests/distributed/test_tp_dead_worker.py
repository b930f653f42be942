"""A tensor-parallel rank that dies makes the engine report dead instead of hanging: the
executor's check_health raises, the step in flight and every later request fail, and the
server answers /health with 500."""
import os
import signal
import threading
import time

import httpx
import pytest

from conftest import ENGINE_KWARGS
from inference_engine import LLM, SamplingParams
from inference_engine.executor import WorkerDeadError
from utils.rank_faults import FailsOffTheDriver
from utils.server import SERVER_ARGS, ServerThread, wait_until

pytestmark = pytest.mark.timeout(300)

SHORT = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
PROMPT = {"prompt_token_ids": list(range(3, 30))}


def _health_error(executor) -> WorkerDeadError | None:
    try:
        executor.check_health()
    except WorkerDeadError as exc:
        return exc
    return None


def test_mp_rank_killed_mid_request_fails_the_request_and_health(tiny_gqa):
    from inference_engine.engine.arg_utils import EngineArgs
    from inference_engine.engine.llm_engine import LLMEngine
    engine = LLMEngine.from_engine_args(EngineArgs(
        model=tiny_gqa, tensor_parallel_size=2, distributed_executor_backend="mp", **ENGINE_KWARGS))
    rank1 = engine.executor._procs[0]
    try:
        with ServerThread(SERVER_ARGS, engine=engine) as server:
            body = {"model": tiny_gqa, "prompt": "Hello there", "max_tokens": 4}
            assert httpx.post(server.url + "/v1/completions", json=body, timeout=60).status_code == 200
            assert httpx.get(server.url + "/health").status_code == 200
            # Kill rank 1 while a long request is being generated.
            steps_before = engine.num_generation_tokens_total
            long_body = {**body, "max_tokens": 400, "ignore_eos": True}
            response = {}
            request = threading.Thread(target=lambda: response.update(r=httpx.post(
                server.url + "/v1/completions", json=long_body, timeout=120)))
            request.start()
            wait_until(lambda: engine.num_generation_tokens_total > steps_before + 3, 60,
                       what="generation under way")
            os.kill(rank1.pid, signal.SIGKILL)
            request.join(timeout=60)
            assert not request.is_alive(), "the request hung after its rank died"
            assert response["r"].status_code == 500
            assert "rank 1" in response["r"].text and "killed by signal 9" in response["r"].text
            assert httpx.get(server.url + "/health").status_code == 500
            assert httpx.post(server.url + "/v1/completions", json=body,
                              timeout=30).status_code == 500
        assert "killed by signal 9" in str(_health_error(engine.executor))
    finally:
        engine.executor.shutdown()


def test_mp_rank_killed_while_idle_is_seen_by_check_health(tiny_gqa):
    llm = LLM(tiny_gqa, tensor_parallel_size=2, distributed_executor_backend="mp", **ENGINE_KWARGS)
    executor = llm.llm_engine.executor
    try:
        llm.generate(PROMPT, SHORT, use_tqdm=False)
        executor.check_health()
        os.kill(executor._procs[0].pid, signal.SIGKILL)
        error = wait_until(lambda: _health_error(executor), 10, what="the death noticed")
        assert "rank 1" in str(error)
        with pytest.raises(WorkerDeadError, match="rank 1"):
            llm.generate(PROMPT, SHORT, use_tqdm=False)
    finally:
        executor.shutdown()


def test_ray_actor_killed_is_seen_by_check_health_and_fails_requests(tiny_gqa, ray_cluster):
    llm = LLM(tiny_gqa, tensor_parallel_size=2, distributed_executor_backend="ray", **ENGINE_KWARGS)
    executor = llm.llm_engine.executor
    try:
        llm.generate(PROMPT, SHORT, use_tqdm=False)
        executor.check_health()
        ray_cluster.kill(executor._actors[0])
        error = wait_until(lambda: _health_error(executor), 30, what="the death noticed")
        assert "rank 1's Ray actor died" in str(error)
        with pytest.raises(WorkerDeadError, match="rank 1"):
            llm.generate(PROMPT, SHORT, use_tqdm=False)
    finally:
        executor.shutdown()


def test_mp_rank_failing_in_a_step_fails_it_at_once_with_its_error(tiny_gqa):
    """The driver is in the step's first collective when rank 1 fails: the rank leaves, which
    breaks the collective at once (not after the 5-minute collective timeout), and the error
    names the rank's own exception."""
    llm = LLM(tiny_gqa, tensor_parallel_size=2, distributed_executor_backend="mp", **ENGINE_KWARGS)
    executor = llm.llm_engine.executor
    run_workers = executor._run_workers

    def failing_on_rank_1(method, *args, **kwargs):
        if method == "execute_step":
            args = (FailsOffTheDriver(args[0]), *args[1:])
        return run_workers(method, *args, **kwargs)

    try:
        llm.generate(PROMPT, SHORT, use_tqdm=False)
        executor._run_workers = failing_on_rank_1
        start = time.monotonic()
        with pytest.raises(WorkerDeadError, match="injected failure on a remote rank"):
            llm.generate(PROMPT, SHORT, use_tqdm=False)
        assert time.monotonic() - start < 30
        assert "rank 1 failed in execute_step" in str(_health_error(executor))
    finally:
        executor.shutdown()
