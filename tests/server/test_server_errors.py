"""Bad input answers 400/404 in OpenAI's error shape, never a 500, and the server keeps serving."""
import httpx
import openai
import pytest

LONG_PROMPT = "word " * 600  # over the test server's max_model_len of 512
CHAT = [{"role": "user", "content": "Hi"}]


def completion(**body) -> tuple[str, dict]:
    return "/v1/completions", {"prompt": "Hello", "max_tokens": 2, **body}


def chat(**body) -> tuple[str, dict]:
    return "/v1/chat/completions", {"messages": CHAT, "max_tokens": 2, **body}


CASES = {
    "negative temperature": (*completion(temperature=-1), 400, "temperature"),
    "top_p above 1": (*chat(top_p=1.5), 400, "top_p"),
    "n of 0": (*completion(n=0), 400, "n"),
    "best_of below n": (*completion(n=2, best_of=1), 400, "best_of"),
    "max_tokens of 0": (*completion(max_tokens=0), 400, "max_tokens"),
    "min_tokens above max_tokens": (*chat(min_tokens=5), 400, "min_tokens"),
    "penalty out of range": (*chat(presence_penalty=3), 400, "presence_penalty"),
    "logprobs above 20": (*completion(logprobs=21), 400, "logprobs"),
    "top_logprobs without logprobs": (*chat(top_logprobs=2), 400, "top_logprobs"),
    "logit_bias key not a token": (*completion(logit_bias={"abc": 1}), 400, "logit_bias"),
    "logit_bias out of range": (*completion(logit_bias={"1": 500}), 400, "logit_bias"),
    "empty stop string": (*completion(stop=[""]), 400, "stop"),
    "stop token id out of the vocabulary": (*chat(stop_token_ids=[10**12]), 400,
                                            "stop_token_ids"),
    "top_k above the vocabulary": (*completion(top_k=10**30), 400, "top_k"),
    "allowed token id out of the vocabulary": (*completion(allowed_token_ids=[10**9]), 400,
                                               "allowed_token_ids"),
    "no allowed token ids": (*chat(allowed_token_ids=[]), 400, "allowed_token_ids"),
    "blank bad word": (*completion(bad_words=[" "]), 400, "bad_words"),
    "empty cache salt": (*completion(cache_salt=""), 400, "cache_salt"),
    "best_of above max_num_seqs": (*completion(best_of=10**6), 400, "best_of"),
    "n of the wrong type": (*completion(n="many"), 400, "n"),
    "empty text prompt": (*completion(prompt=""), 400, "prompt"),
    "empty prompt list": (*completion(prompt=[]), 400, "prompt"),
    "token id out of the vocabulary": (*completion(prompt=[1, 10**9]), 400, "prompt"),
    "suffix": (*completion(suffix="x"), 400, "suffix"),
    "no prompt": ("/v1/completions", {"max_tokens": 2}, 400, "prompt"),
    "priority without the priority policy": (*chat(priority=1), 400, "priority"),
    "no messages": ("/v1/chat/completions", {"max_tokens": 2}, 400, "messages"),
    "empty messages": (*chat(messages=[]), 400, "messages"),
    "image content part": (*chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]), 400, "messages"),
    "broken chat template": (*chat(chat_template="{% for %}"), 400, "chat_template"),
    "prompt plus max_tokens over the context": (*completion(max_tokens=512), 400, "prompt"),
    "long prompt": (*completion(prompt=LONG_PROMPT), 400, "prompt"),
    "long chat, no max_tokens": (*chat(messages=[{"role": "user", "content": LONG_PROMPT}],
                                       max_tokens=None), 400, "messages"),
    "logit_bias key of non-ASCII digits": (*completion(logit_bias={"³": 1}), 400, "logit_bias"),
    "logit_bias key of two signs": (*chat(logit_bias={"--1": 1}), 400, "logit_bias"),
    "huge length_penalty": (*completion(use_beam_search=True, n=2, length_penalty=1e308), 400,
                            "length_penalty"),
    "tool_calls not a list": (*chat(messages=[{"role": "assistant", "tool_calls": "x"}]), 400,
                              "messages.0.tool_calls"),
    "tool call not an object": (*chat(messages=[{"role": "assistant", "tool_calls": [5]}]), 400,
                                "messages.0.tool_calls.0"),
    "unknown model": (*completion(model="no-such-model"), 404, "model"),
    "unknown chat model": (*chat(model="no-such-model"), 404, "model"),
}


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if param is not None:
        assert error["param"] == param, error
    return error


@pytest.mark.parametrize("path, body, status, param", CASES.values(), ids=CASES.keys())
def test_bad_request_gets_an_openai_error(server, path, body, status, param):
    assert_openai_error(httpx.post(server.url + path, json=body, timeout=60), status, param)


def test_context_length_message_names_the_numbers(server):
    path, body = completion(max_tokens=512)
    error = assert_openai_error(httpx.post(server.url + path, json=body), 400, "prompt")
    assert error["message"].startswith(
        "This model's maximum context length is 512 tokens. However, you requested 513 tokens "
        "(1 in the prompt, 512 in the completion)")
    assert error["code"] == "context_length_exceeded"


@pytest.mark.parametrize("content", [b'{"prompt": "Hello", ', b"[1, 2]", b"", b"\xff\xfe"])
def test_malformed_body_is_a_400(server, content):
    response = httpx.post(server.url + "/v1/completions", content=content,
                          headers={"content-type": "application/json"})
    assert_openai_error(response, 400)


def test_unknown_route_is_an_openai_404(server):
    assert_openai_error(httpx.get(server.url + "/v1/nothing-here"), 404)


def test_openai_client_raises_typed_errors(client, model):
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model=model, prompt="Hello", temperature=-1)
    assert bad.value.status_code == 400 and bad.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=CHAT)


def test_server_keeps_serving_after_errors(server, client, model):
    for path, body, _, _ in list(CASES.values())[:5]:
        httpx.post(server.url + path, json=body)
    assert httpx.get(server.url + "/health").status_code == 200
    out = client.completions.create(model=model, prompt="Hello", max_tokens=2, temperature=0)
    assert out.choices[0].text
    engine = server.engine_client.engine
    assert not engine.has_unfinished_requests()
