"""Hostile requests (issue #29) against the session server (request chat templates trusted):
none stalls the event loop (health answers within a second meanwhile), none grows memory
without a limit, and each gets a 4xx in OpenAI's shape."""
import json
import threading
import time

import httpx
import pytest

from test_server_errors import assert_openai_error
from utils.server import engine_idle, wait_until

CHAT = [{"role": "user", "content": "hi"}]
# A blocked event loop answers after the hostile work is done (seconds); a free one at once,
# though CI's loaded two cores once took 1.1 s.
HEALTH_LIMIT_S = 2.0


def while_polling_health(server, action):
    """Runs `action()` in a thread while GET /health is polled; returns its result after
    asserting that every health check answered 200 within HEALTH_LIMIT_S."""
    result, slowest = {}, []

    def run():
        result["value"] = action()

    worker = threading.Thread(target=run)
    worker.start()
    with httpx.Client(timeout=HEALTH_LIMIT_S * 5) as client:
        while True:  # at least once, however quick the action
            started = time.monotonic()
            assert client.get(server.url + "/health").status_code == 200
            slowest.append(time.monotonic() - started)
            if not worker.is_alive():
                break
            time.sleep(0.05)
    worker.join()
    assert max(slowest) < HEALTH_LIMIT_S, f"slowest health check {max(slowest):.2f} s"
    return result["value"]


def post_raw(server, path: str, body: str, timeout: float = 60) -> httpx.Response:
    """A body as written (JSON that json.dumps would not write: lone surrogates, Infinity)."""
    return httpx.post(server.url + path, content=body.encode(), timeout=timeout,
                      headers={"content-type": "application/json"})


@pytest.mark.parametrize("template, message", [
    ("{{ 'ab ' * 20000000 }}", "characters, over the limit"),
    ("{% for i in range(100000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}x",
     "took longer than"),
    ("{{ 'x' * 3000000000 }}", "too much memory"),
], ids=["huge string", "long loop", "memory"])
def test_hostile_request_templates_are_stopped_while_health_answers(server, template, message):
    body = {"messages": CHAT, "max_tokens": 4, "chat_template": template}
    for path in ("/v1/chat/completions", "/tokenize"):
        response = while_polling_health(
            server, lambda: httpx.post(server.url + path, json=body, timeout=60))
        error = assert_openai_error(response, 400, "chat_template")
        assert message in error["message"]
    reply = httpx.post(server.url + "/v1/chat/completions", timeout=60, json={
        "messages": CHAT, "max_tokens": 2, "chat_template": "{{ messages[0]['content'] }}"})
    assert reply.status_code == 200  # the sandbox serves the next template


def test_chat_template_kwargs_cannot_set_the_renderers_own_arguments(server):
    for key in ("tokenize", "chat_template", "messages"):
        body = {"messages": CHAT, "max_tokens": 2, "chat_template_kwargs": {key: True}}
        response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
        assert_openai_error(response, 400, "chat_template_kwargs")


HUGE = 20_000_000  # bytes: the prompt, over the 8 MiB body limit
LONG = 2_000_000  # bytes: under the body limit, over the 1 MiB prompt limit


def prompt_bodies(size: int) -> dict[str, tuple[str, dict]]:
    return {"completion": ("/v1/completions", {"prompt": "x" * size, "max_tokens": 4}),
            "chat": ("/v1/chat/completions",
                     {"messages": [{"role": "user", "content": "x" * size}]}),
            "tokenize": ("/tokenize", {"prompt": "hello " * (size // 6)}),
            "embeddings": ("/v1/embeddings", {"input": ["short", "y" * size]})}


@pytest.mark.parametrize("path, body", prompt_bodies(HUGE).values(),
                         ids=prompt_bodies(HUGE).keys())
def test_huge_bodies_are_refused_unread(server, path, body):
    started = time.monotonic()
    response = while_polling_health(
        server, lambda: httpx.post(server.url + path, json=body, timeout=60))
    assert assert_openai_error(response, 413)["code"] == "request_too_large"
    assert time.monotonic() - started < 10  # 17-21 s of tokenizing before


@pytest.mark.parametrize("path, body", prompt_bodies(LONG).values(),
                         ids=prompt_bodies(LONG).keys())
def test_long_prompts_are_refused_before_tokenizing(server, path, body):
    response = while_polling_health(
        server, lambda: httpx.post(server.url + path, json=body, timeout=60))
    assert assert_openai_error(response, 400)["code"] == "context_length_exceeded"
    assert "--max-prompt-bytes" in response.json()["error"]["message"]


SURROGATE_BODIES = {
    "/v1/completions": '{"prompt": "a\\ud800b", "max_tokens": 2}',
    "/v1/chat/completions": '{"messages": [{"role": "user", "content": "a\\udfffb"}]}',
    "/tokenize": '{"prompt": "a\\ud800b"}',
    "/v1/embeddings": '{"input": ["ok", "a\\ud800b"]}',
    "/v1/responses": '{"input": "a\\ud800b", "max_output_tokens": 2}',
    "/score": '{"text_1": "a\\ud800b", "text_2": "b"}',
    "/invocations": '{"prompt": "a\\ud800", "max_tokens": 2}',
}


@pytest.mark.parametrize("path", SURROGATE_BODIES)
def test_a_lone_surrogate_is_a_400_naming_the_field(server, path):
    error = assert_openai_error(post_raw(server, path, SURROGATE_BODIES[path]), 400)
    assert "surrogate" in error["message"] and error["param"] is not None


@pytest.mark.parametrize("body, param", [
    ('{"prompt": "a", "temperature": Infinity}', "temperature"),
    ('{"prompt": "a", "top_p": NaN}', "top_p"),
    ('{"prompt": "a", "temperature": 1e308}', "temperature"),
    ('{"prompt": "a", "logit_bias": {"1": -Infinity}}', "logit_bias.1"),
    ('{"prompt": "a", "stream_options": {"include_usage": true}}', "stream_options"),
], ids=["infinite temperature", "NaN top_p", "huge temperature", "infinite bias",
        "stream_options without stream"])
def test_values_openai_refuses_are_400(server, body, param):
    assert_openai_error(post_raw(server, "/v1/completions", body), 400, param)


def test_an_unknown_role_is_400(server):
    body = {"messages": [{"role": "hacker", "content": "x"}], "max_tokens": 2}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert_openai_error(response, 400, "messages.0.role")


def test_a_finished_grammar_ends_its_sequence_despite_ignore_eos(server):
    body = {"prompt": "hi", "max_tokens": 6, "ignore_eos": True, "guided_choice": ["a"]}
    response = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["text"] == "a" and choice["finish_reason"] == "stop"
    assert httpx.get(server.url + "/health").status_code == 200  # the engine loop lives


def test_cors_is_off_by_default(server):
    preflight = httpx.options(server.url + "/v1/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    simple = httpx.get(server.url + "/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_the_engine_is_idle_after_all_of_it(server):
    wait_until(lambda: engine_idle(server), timeout=30, what="no request left, blocks free")
    assert json.loads(httpx.get(server.url + "/health").text or "null") is None
