"""Admission control (issue #29): a server that may run 4 requests and keep 8 waiting answers a
burst with 200 or 503 + Retry-After (never a hang), gives up a request queued past
--queue-timeout with 503 (streamed or not), keeps no block afterwards, drops half-sent requests
after its HTTP timeouts, and answers CORS only for the origin it names."""
import asyncio
import socket
import threading
import time

import httpx
import pytest

from test_server_errors import assert_openai_error
from utils.server import SERVER_ARGS, ServerThread, engine_idle, wait_until

ORIGIN = "https://ok.example"
QUEUE_TIMEOUT_S = 3.0
HTTP_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def small_server():
    args = SERVER_ARGS + ["--max-num-seqs", "4", "--max-waiting-requests", "8",
                          "--queue-timeout", str(QUEUE_TIMEOUT_S),
                          "--http-header-timeout", str(HTTP_TIMEOUT_S),
                          "--http-body-timeout", str(HTTP_TIMEOUT_S),
                          "--allowed-origins", f'["{ORIGIN}"]']
    with ServerThread(args) as running:
        yield running


def assert_overloaded(response: httpx.Response) -> None:
    error = assert_openai_error(response, 503)
    assert error["code"] == "overloaded" and error["type"] == "server_error"
    assert int(response.headers["retry-after"]) >= 1


def test_a_burst_is_answered_200_or_503(small_server):
    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n)) as c:
            return await asyncio.gather(*[c.post(
                small_server.url + "/v1/completions",
                json={"prompt": f"Number {i}:", "max_tokens": 4, "stream": i % 2 == 1})
                for i in range(n)])

    responses = asyncio.run(burst(200))
    statuses = {r.status_code for r in responses}
    assert statuses == {200, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            assert_overloaded(response)
        elif response.headers["content-type"].startswith("text/event-stream"):
            assert response.text.rstrip().endswith("data: [DONE]")
    assert httpx.get(small_server.url + "/health").status_code == 200
    wait_until(lambda: engine_idle(small_server), timeout=30, what="blocks freed")


def test_a_request_queued_past_the_timeout_gets_503(small_server):
    stop = threading.Event()

    def occupy():  # a long stream, read until told to stop (then closed: aborted)
        with httpx.stream("POST", small_server.url + "/v1/completions", timeout=120, json={
                "prompt": "Once upon a time", "max_tokens": 480, "ignore_eos": True,
                "stream": True}) as response:
            for _ in response.iter_lines():
                if stop.is_set():
                    return

    holders = [threading.Thread(target=occupy) for _ in range(4)]
    for holder in holders:
        holder.start()
    engine = small_server.engine_client.engine
    wait_until(lambda: len(engine.scheduler.running) == 4, timeout=60, what="4 running")
    try:
        for stream in (False, True):
            response = httpx.post(small_server.url + "/v1/completions", timeout=60, json={
                "prompt": "Hi", "max_tokens": 4, "stream": stream})
            assert_overloaded(response)
            assert "queue" in response.json()["error"]["message"]
    finally:
        stop.set()
        for holder in holders:
            holder.join(timeout=60)
    wait_until(lambda: engine_idle(small_server), timeout=30, what="blocks freed")


def test_half_sent_requests_are_dropped_after_the_http_timeouts(small_server):
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sockets = []
    for i in range(200):
        sock = socket.create_connection(("127.0.0.1", small_server.port))
        # Half of them stop inside the headers, half inside a body of 1000 bytes.
        sock.sendall(head if i % 2 else head + b"Content-Length: 1000\r\n\r\n{\"prompt\": ")
        sockets.append(sock)
    started = time.monotonic()
    assert httpx.get(small_server.url + "/health", timeout=1).status_code == 200
    answers = []
    for sock in sockets:
        sock.settimeout(HTTP_TIMEOUT_S + 10 - (time.monotonic() - started))
        answers.append(b"".join(iter(lambda s=sock: s.recv(65536), b"")))  # until closed
        sock.close()
    assert time.monotonic() - started < HTTP_TIMEOUT_S + 10
    assert all(answer == b"" for answer in answers[1::2])  # headers unfinished: just closed
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers[0::2])
    assert httpx.get(small_server.url + "/health", timeout=1).status_code == 200


def test_more_prompts_than_may_wait_is_a_400_not_a_503(small_server):
    body = {"prompt": [f"t{i}" for i in range(13)], "max_tokens": 1}  # 4 run, 8 may wait
    response = httpx.post(small_server.url + "/v1/completions", json=body, timeout=60)
    assert "--max-waiting-requests" in assert_openai_error(response, 400, "prompt")["message"]
    body["prompt"] = body["prompt"][:12]
    assert httpx.post(small_server.url + "/v1/completions", json=body, timeout=60).is_success


def test_cors_answers_only_the_named_origin(small_server):
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(small_server.url + "/v1/chat/completions", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})

    allowed = preflight(ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in preflight("https://evil.example").headers
    response = httpx.get(small_server.url + "/v1/models", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
