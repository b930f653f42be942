"""When the engine loop dies, /health answers 500 and every open and new request gets an error
in OpenAI's shape instead of hanging.

The fault is injected through an engine whose step() fails on demand; it borrows the tokenizer
and config of the session's real engine, so the server around it is the real one.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from utils.server import SERVER_ARGS, ServerThread, wait_until


class FailingEngine:
    """Accepts requests; its first step() blocks until `fail` is set, then raises."""

    def __init__(self, real):
        self.config, self.tokenizer = real.config, real.tokenizer
        self.request_ids: list[str] = []
        self.requests: dict[str, object] = {}  # the live requests' groups: none are ever read
        self.fail = threading.Event()

    def check_request(self, request):
        pass

    def add_request(self, request):
        self.request_ids.append(request.request_id)
        self.requests[request.request_id] = None

    def check_health(self):
        pass

    def abort_request(self, request_id):
        pass

    def has_unfinished_requests(self) -> bool:
        return bool(self.request_ids)

    def get_num_waiting_requests(self, num_new: int = 0) -> int:
        return 0

    def release_idle_memory(self):
        pass

    def step(self):
        self.fail.wait(timeout=120)
        raise RuntimeError("injected fault in step()")


@pytest.fixture
def failing(server):
    engine = FailingEngine(server.engine_client.engine)
    try:
        with ServerThread(SERVER_ARGS, engine) as running:
            yield running, engine
    finally:
        engine.fail.set()


def test_dead_engine_fails_open_and_new_requests(failing, model):
    running, engine = failing
    client = openai.OpenAI(base_url=running.url + "/v1", api_key="x", max_retries=0, timeout=60)
    assert httpx.get(running.url + "/health").status_code == 200

    def stream_chat():
        chunks = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True)
        return list(chunks)

    def plain_completion():
        return client.completions.create(model=model, prompt="Hi", max_tokens=4)

    with ThreadPoolExecutor(2) as pool:
        streamed, plain = pool.submit(stream_chat), pool.submit(plain_completion)
        # One request is inside the blocked step, the other queued for the next one.
        wait_until(lambda: running.engine_client.num_open_requests == 2, timeout=30,
                   what="both requests open")
        engine.fail.set()
        with pytest.raises(openai.APIError, match="engine loop has stopped"):
            streamed.result(timeout=30)
        with pytest.raises(openai.InternalServerError) as error:
            plain.result(timeout=30)
    assert error.value.body["code"] == "engine_dead"

    health = httpx.get(running.url + "/health")
    assert health.status_code == 500 and health.json()["error"]["code"] == "engine_dead"
    with pytest.raises(openai.InternalServerError):
        client.completions.create(model=model, prompt="Hi", max_tokens=2, timeout=10)
    late = httpx.post(running.url + "/v1/chat/completions", timeout=10, json={
        "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    assert late.status_code == 500 and late.json()["error"]["type"] == "server_error"
