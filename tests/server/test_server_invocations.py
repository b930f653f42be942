"""SageMaker's routes (vLLM's): POST /invocations answers a chat, completion or embedding
request as its own endpoint would, told apart by the body; a body of none of them, or a bad
one, is a 400 in OpenAI's shape; /ping is the health check (GET and POST)."""
import httpx
import pytest

GREEDY = {"temperature": 0.0, "max_tokens": 6}


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], **GREEDY}),
    ("/v1/completions", {"prompt": "The capital of France is", **GREEDY}),
    ("/v1/embeddings", {"input": "Hello world"}),
])
def test_invocations_answer_as_the_endpoint(server, path, body):
    direct = httpx.post(server.url + path, json=body, timeout=60).json()
    via = httpx.post(server.url + "/invocations", json=body, timeout=60)
    assert via.status_code == 200
    via = via.json()
    assert via["object"] == direct["object"]
    for key in ("choices", "data"):
        if key in direct:
            strip = [{k: v for k, v in item.items() if k != "id"} for item in direct[key]]
            assert [{k: v for k, v in item.items() if k != "id"} for item in via[key]] == strip


@pytest.mark.parametrize("body,message", [({"text": "Hi"}, "takes a chat"),
                                          ({"messages": "Hi"}, "messages")])
def test_bad_bodies_are_400s(server, body, message):
    reply = httpx.post(server.url + "/invocations", json=body, timeout=60)
    assert reply.status_code == 400
    assert message in reply.json()["error"]["message"]


def test_ping(server):
    assert httpx.get(server.url + "/ping").status_code == 200
    assert httpx.post(server.url + "/ping").status_code == 200
