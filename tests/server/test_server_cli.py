"""The real `inference-engine serve` in a subprocess: --api-key on every route but the open
ones (health, ping, metrics, version), --served-model-name (two names: both answer), request ids
on log lines, and a graceful stop on SIGTERM."""
import signal
import threading

import httpx
import openai
import pytest

from utils.server import SERVER_ARGS, ServerProcess, wait_until

API_KEY = "test-key-123"
NAME = "served-under-another-name"
ALIAS = "and-a-second-name"
GUARDED_ROUTES = [("GET", "/v1/models", None),
                  ("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1}),
                  ("POST", "/v1/chat/completions",
                   {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}),
                  ("POST", "/v1/responses", {"input": "Hi", "max_output_tokens": 1}),
                  ("POST", "/v1/embeddings", {"input": "Hi"}),
                  ("POST", "/score", {"text_1": "Hi", "text_2": "Hello"}),
                  ("POST", "/v2/rerank", {"query": "Hi", "documents": ["Hello"]}),
                  ("POST", "/reset_prefix_cache", None),
                  ("POST", "/invocations", {"prompt": "Hi", "max_tokens": 1}),
                  # Tokenizing runs a chat template: as costly as any API route.
                  ("POST", "/tokenize", {"messages": [{"role": "user", "content": "Hi"}]}),
                  ("POST", "/detokenize", {"tokens": [1, 2]}),
                  ("GET", "/openapi.json", None), ("GET", "/docs", None)]
OPEN_ROUTES = [("GET", "/health"), ("GET", "/version"), ("GET", "/metrics"), ("GET", "/ping"),
               ("POST", "/ping")]


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("cli") / "server.log"
    server = ServerProcess(["--api-key", API_KEY, "--served-model-name", NAME, ALIAS,
                            *SERVER_ARGS],
                           str(log))
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("method, path, body", GUARDED_ROUTES)
@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": API_KEY}],
                         ids=["missing", "wrong", "not bearer"])
def test_routes_need_the_key(cli_server, method, path, body, headers):
    response = httpx.request(method, cli_server.url + path, json=body, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"


@pytest.mark.parametrize("method, path, body", GUARDED_ROUTES)
def test_routes_work_with_the_key(cli_server, method, path, body):
    response = httpx.request(method, cli_server.url + path, json=body, headers=bearer(API_KEY),
                             timeout=60)
    assert response.status_code == 200, response.text


def test_auth_comes_before_parsing_and_other_routes_are_open(cli_server):
    malformed = httpx.post(cli_server.url + "/v1/completions", content=b"{",
                           headers={"content-type": "application/json"})
    assert malformed.status_code == 401
    assert httpx.get(cli_server.url + "/no/such/route").status_code == 401
    for method, path in OPEN_ROUTES:
        assert httpx.request(method, cli_server.url + path).status_code == 200, path


def test_openai_client_with_and_without_the_key(cli_server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=cli_server.url + "/v1", api_key="wrong",
                      max_retries=0).models.list()
    client = openai.OpenAI(base_url=cli_server.url + "/v1", api_key=API_KEY, max_retries=0)
    assert [m.id for m in client.models.list().data] == [NAME, ALIAS]
    for name in (NAME, ALIAS):  # either name answers, and the response says which was asked
        assert client.completions.create(model=name, prompt="Hi", max_tokens=1).model == name
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="SmolLM2-135M-Instruct", prompt="Hi", max_tokens=1)


def test_log_lines_carry_the_request_id(cli_server):
    httpx.post(cli_server.url + "/v1/completions", headers={**bearer(API_KEY),
                                                            "X-Request-Id": "trace-cli-7"},
               json={"prompt": "Hi", "max_tokens": 1}, timeout=60)
    lines = [line for line in cli_server.log.splitlines() if "trace-cli-7" in line]
    assert any("[trace-cli-7]" in line and "POST /v1/completions" in line for line in lines)
    assert any("[trace-cli-7]" in line and "cmpl-trace-cli-7" in line for line in lines)


def test_sigterm_lets_the_open_request_finish_then_exits(cli_server):
    result = {}

    def complete():
        result["response"] = httpx.post(
            cli_server.url + "/v1/completions", headers=bearer(API_KEY), timeout=120,
            json={"prompt": "Once upon a time", "max_tokens": 24, "ignore_eos": True})

    request = threading.Thread(target=complete)
    request.start()
    wait_until(lambda: "num_requests_running 1.0" in httpx.get(cli_server.url + "/metrics").text,
               timeout=60, what="the request running")
    cli_server.process.send_signal(signal.SIGTERM)
    request.join(timeout=120)
    response = result["response"]
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 24
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert cli_server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "engine stopped" in cli_server.log
    with pytest.raises(httpx.ConnectError):
        httpx.get(cli_server.url + "/health")
