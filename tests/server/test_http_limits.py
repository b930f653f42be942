"""The body size and time limits and the header timeout of http_limits, on a tiny app under
uvicorn in a thread, driven over raw sockets (to send half a request) and httpx."""
import asyncio
import json
import re
import select
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from inference_engine.entrypoints.openai.http_limits import BodyLimitMiddleware, http_protocol
from utils.server import wait_until

MAX_BODY_BYTES = 4096
BODY_TIMEOUT = 1.0
HEADER_TIMEOUT = 1.0
# Slack for a loaded two-core machine on top of each timeout.
MARGIN = 1.0


def build_app() -> FastAPI:
    """An echo route that records how many body bytes it saw, and an SSE route."""
    app = FastAPI()
    app.state.bytes_seen = []
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=MAX_BODY_BYTES,
                       body_timeout=BODY_TIMEOUT)

    @app.post("/echo")
    async def echo(request: Request):
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
        finally:
            app.state.bytes_seen.append(len(body))
        return {"size": len(body), "keys": sorted(json.loads(body)),
                "port": request.client.port}

    @app.post("/stream")
    async def stream(request: Request):
        spec = await request.json()

        async def events():
            for i in range(spec["events"]):
                await asyncio.sleep(spec["interval"])
                yield f"data: {i}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    app.mount("/early", respond_before_reading)
    return app


async def respond_before_reading(scope, receive, send):
    """Starts its response, then reads the body and ends with how much of it it saw."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    seen = 0
    while (message := await receive())["type"] == "http.request":
        seen += len(message["body"])
        await send({"type": "http.response.body", "body": b"chunk ", "more_body": True})
    await send({"type": "http.response.body", "body": f"saw {seen}".encode()})


@pytest.fixture(scope="module")
def server():
    """(base url, port, app) of the app under uvicorn with the header timeout."""
    app = build_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=http_protocol(HEADER_TIMEOUT), log_level="warning",
                            timeout_keep_alive=5)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: running.started or not thread.is_alive(), 30, what="server startup")
    assert running.started
    yield f"http://127.0.0.1:{port}", port, app
    running.should_exit = True
    thread.join(timeout=10)
    sock.close()


def head(path: str, *headers: str) -> bytes:
    """A POST's request line and headers."""
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """All the server sends until it closes the connection; fails if it is open after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        return data
    except TimeoutError:
        pytest.fail(f"the connection is still open after {timeout} s; got {data!r}")


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of one raw response."""
    head_bytes, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def assert_openai_error(response: bytes, status: int, code: str) -> None:
    """`response` is an OpenAI-shaped error of `status` and `code` that closes the connection."""
    got_status, headers, body = parse(response)
    assert got_status == status, response
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["type"] == "invalid_request_error"


def test_content_length_over_limit_answers_413_without_reading_the_body(server):
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # Like curl, wait for `100 Continue` before sending the body: it must never come.
        sock.sendall(head("/echo", "Content-Length: 100000000", "Expect: 100-continue"))
        response = read_until_closed(sock, MARGIN)
    assert_openai_error(response, 413, "request_too_large")


def send_chunks_past_limit(port: int, path: str) -> bytes:
    """Streams a chunked body of four times the limit, 1 KiB a chunk, until the server closes
    the connection; returns all it answered."""
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head(path, "Transfer-Encoding: chunked"))
        try:
            for _ in range(4 * MAX_BODY_BYTES // 1024):
                sock.sendall(chunk)
                time.sleep(0.02)
        except OSError:  # the server closed the connection on the excess
            pass
        return read_until_closed(sock, MARGIN)


def test_chunked_body_growing_past_limit_answers_413(server):
    _, port, app = server
    seen_before = len(app.state.bytes_seen)
    response = send_chunks_past_limit(port, "/echo")
    assert_openai_error(response, 413, "request_too_large")
    wait_until(lambda: len(app.state.bytes_seen) > seen_before, MARGIN, what="the app's end")
    assert app.state.bytes_seen[-1] <= MAX_BODY_BYTES


def test_body_past_limit_after_the_response_started_ends_that_response(server):
    """Too late for a 413: the app hears the client went away and ends its response, which
    closes the connection (it said so when it started, the body being incomplete)."""
    _, port, _ = server
    status, headers, body = parse(send_chunks_past_limit(port, "/early/"))
    assert status == 200 and headers["connection"] == "close"
    assert headers["transfer-encoding"] == "chunked" and body.endswith(b"\r\n0\r\n\r\n")
    seen = int(re.search(rb"saw (\d+)", body).group(1))
    assert 0 < seen <= MAX_BODY_BYTES


def test_bodies_under_the_limit_are_served(server):
    url, _, _ = server
    payload = {"text": "x" * (MAX_BODY_BYTES - 100)}
    sized = httpx.post(url + "/echo", json=payload)
    chunked = httpx.post(url + "/echo", content=iter([json.dumps(payload).encode()]),
                         headers={"Content-Type": "application/json"})
    for response in (sized, chunked):
        assert response.status_code == 200, response.text
        assert response.json()["keys"] == ["text"]
    assert "transfer-encoding" in chunked.request.headers


def test_stalled_body_answers_408_and_closes(server):
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head("/echo", "Content-Length: 100") + b'{"text": "' + b"x" * 40)
        start = time.monotonic()
        response = read_until_closed(sock, BODY_TIMEOUT + MARGIN)
        elapsed = time.monotonic() - start
    assert_openai_error(response, 408, "request_timeout")
    assert elapsed >= BODY_TIMEOUT * 0.9


def test_unread_body_closes_the_connection_after_the_response(server):
    """A response that starts before the body is complete (here a 404) closes the connection
    rather than keep reading a body nobody waits for."""
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head("/missing", "Content-Length: 100") + b"x" * 50)
        status, headers, _ = parse(read_until_closed(sock, MARGIN))
    assert status == 404 and headers["connection"] == "close"


def test_trickled_headers_are_cut_off(server):
    _, port, _ = server
    request = head("/echo", "Content-Length: 2") + b"{}"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.monotonic()
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 1.0)[0]:  # readable: closed
                break
        data = read_until_closed(sock, MARGIN)
        elapsed = time.monotonic() - start
    assert data == b""
    assert elapsed <= HEADER_TIMEOUT + MARGIN


def test_silent_connection_is_closed(server):
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert read_until_closed(sock, HEADER_TIMEOUT + MARGIN) == b""


def test_many_half_sent_requests_are_dropped_while_others_are_served(server):
    url, port, _ = server
    half_bodies, half_heads = [], []
    start = time.monotonic()
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head("/echo", "Content-Length: 100") + b"{")
        half_bodies.append(sock)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head("/echo")[:20])
        half_heads.append(sock)
    try:
        with httpx.Client(base_url=url) as client:
            served = time.monotonic()
            assert client.post("/echo", json={"a": 1}).status_code == 200
            assert time.monotonic() - served < 0.5
            deadline = start + max(BODY_TIMEOUT, HEADER_TIMEOUT) + MARGIN
            for sock in half_bodies:
                response = read_until_closed(sock, deadline - time.monotonic())
                assert_openai_error(response, 408, "request_timeout")
            for sock in half_heads:
                assert read_until_closed(sock, deadline - time.monotonic()) == b""
            served = time.monotonic()
            assert client.post("/echo", json={"a": 1}).status_code == 200
            assert time.monotonic() - served < 0.5
    finally:
        for sock in half_bodies + half_heads:
            sock.close()


def test_sse_stream_outlives_the_body_timeout(server):
    url, _, _ = server
    start = time.monotonic()
    with httpx.stream("POST", url + "/stream", json={"events": 5, "interval": 0.5}) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line]
    assert events == [f"data: {i}" for i in range(5)] + ["data: [DONE]"]
    assert time.monotonic() - start > 2 * BODY_TIMEOUT


def test_keep_alive_serves_requests_on_one_connection(server):
    """Two requests on one connection, idle longer than the header timeout in between (the idle
    time is uvicorn's keep-alive timeout's, not the header timeout's)."""
    url, _, _ = server
    with httpx.Client(base_url=url) as client:
        first = client.post("/echo", json={"a": 1})
        time.sleep(HEADER_TIMEOUT + 0.5)
        second = client.post("/echo", json={"b": 2})
    assert first.status_code == second.status_code == 200
    assert first.json()["port"] == second.json()["port"]
