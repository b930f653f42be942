"""POST /v1/embeddings through the openai client: one embedding per input (text or token ids),
normalized, as LLM.embed gives them; base64 and dimensions; bad input answers 400."""
import base64
import struct

import httpx
import pytest

TEXTS = ["Hello world", "The capital of France is Paris."]


def test_embeddings_of_texts_and_token_ids(client, model, server):
    reply = client.embeddings.create(model=model, input=TEXTS)
    assert [d.index for d in reply.data] == [0, 1] and reply.object == "list"
    vectors = [d.embedding for d in reply.data]
    hidden = server.engine_client.config.model_config.hf_config.hidden_size
    assert all(len(v) == hidden and abs(sum(x * x for x in v) - 1) < 1e-4 for v in vectors)
    assert vectors[0] != vectors[1]
    ids = httpx.post(server.url + "/tokenize", json={"prompt": TEXTS[0]}).json()["tokens"]
    again = client.embeddings.create(model=model, input=ids)
    assert again.data[0].embedding == pytest.approx(vectors[0], abs=1e-5)
    assert reply.usage.prompt_tokens == reply.usage.total_tokens > len(ids)


def test_truncate_prompt_tokens_embeds_the_last_tokens(client, model, server):
    ids = httpx.post(server.url + "/tokenize", json={"prompt": TEXTS[1]}).json()["tokens"]
    cut = client.embeddings.create(model=model, input=TEXTS[1],
                                   extra_body={"truncate_prompt_tokens": 4})
    assert cut.usage.prompt_tokens == 4
    last = client.embeddings.create(model=model, input=ids[-4:])
    assert cut.data[0].embedding == pytest.approx(last.data[0].embedding, abs=1e-6)


def test_base64_and_dimensions(client, model):
    floats = client.embeddings.create(model=model, input=TEXTS[1], dimensions=32,
                                      encoding_format="float").data[0].embedding
    raw = httpx.post(str(client.base_url) + "embeddings", json={
        "input": TEXTS[1], "dimensions": 32, "encoding_format": "base64"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack("<32f", packed)) == pytest.approx(floats, abs=1e-6)
    assert len(floats) == 32 and abs(sum(x * x for x in floats) - 1) < 1e-4


@pytest.mark.parametrize("body,param", [
    ({"input": []}, "input"), ({"input": ""}, "input"), ({"input": [10**9]}, "input"),
    ({"input": "x", "dimensions": 10**6}, "dimensions"), ({"input": "x", "dimensions": 0}, None),
    ({"input": "word " * 600}, "input"), ({"input": "x", "priority": 2}, "priority"),
])
def test_bad_input_answers_400(server, body, param):
    reply = httpx.post(server.url + "/v1/embeddings", json=body, timeout=60)
    assert reply.status_code == 400, reply.text
    if param is not None:
        assert reply.json()["error"]["param"] == param
