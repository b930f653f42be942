"""POST /score and /rerank: cosine similarities of the texts' embeddings (as /v1/embeddings
gives them), one against many or pairwise; rerank orders the documents by them and keeps top_n;
bad requests answer 400."""
import httpx
import pytest

QUERY = "What is the capital of France?"
DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "France's capital is Paris."]


def embeddings(server, texts: list[str]) -> list[list[float]]:
    reply = httpx.post(server.url + "/v1/embeddings", json={"input": texts}, timeout=60).json()
    return [d["embedding"] for d in reply["data"]]


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))  # both normalized


def test_score_one_against_many_and_pairwise(server):
    query, *docs = embeddings(server, [QUERY, *DOCS])
    reply = httpx.post(server.url + "/score", json={"text_1": QUERY, "text_2": DOCS},
                       timeout=60).json()
    assert [d["index"] for d in reply["data"]] == [0, 1, 2] and reply["object"] == "list"
    assert [d["score"] for d in reply["data"]] == pytest.approx(
        [cosine(query, d) for d in docs], abs=1e-5)
    pairwise = httpx.post(server.url + "/v1/score", json={"text_1": DOCS[:2],
                                                          "text_2": DOCS[1:]}, timeout=60).json()
    assert [d["score"] for d in pairwise["data"]] == pytest.approx(
        [cosine(docs[0], docs[1]), cosine(docs[1], docs[2])], abs=1e-5)
    assert reply["usage"]["prompt_tokens"] > 0


def test_rerank_orders_the_documents(server):
    scores = [d["score"] for d in httpx.post(server.url + "/score", json={
        "text_1": QUERY, "text_2": DOCS}, timeout=60).json()["data"]]
    reply = httpx.post(server.url + "/v1/rerank", json={"query": QUERY, "documents": DOCS,
                                                        "top_n": 2}, timeout=60).json()
    best = sorted(range(3), key=lambda i: -scores[i])[:2]
    assert [r["index"] for r in reply["results"]] == best
    assert [r["document"]["text"] for r in reply["results"]] == [DOCS[i] for i in best]
    assert [r["relevance_score"] for r in reply["results"]] == pytest.approx(
        [scores[i] for i in best], abs=1e-5)
    everything = httpx.post(server.url + "/rerank", json={"query": QUERY, "documents": DOCS},
                            timeout=60).json()
    assert len(everything["results"]) == 3 and everything["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("path,body,param", [
    ("/score", {"text_1": ["a", "b"], "text_2": ["a", "b", "c"]}, "text_1"),
    ("/score", {"text_1": [], "text_2": "a"}, "text_1"),
    ("/score", {"text_1": "a", "text_2": ""}, "input"),
    ("/rerank", {"query": "a", "documents": []}, "documents"),
    ("/rerank", {"query": "a", "documents": ["b"], "top_n": -1}, "top_n"),
])
def test_bad_requests_answer_400(server, path, body, param):
    reply = httpx.post(server.url + path, json=body, timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param
