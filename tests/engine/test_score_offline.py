"""LLM.score (vLLM's, for embedding models): each pair's cosine similarity of the texts'
normalized embeddings, one text against many or pairwise; texts that don't pair up refused."""
import pytest

from inference_engine.scoring import ScoreInputError, score_pairs

QUERY = "What is the capital of France?"
DOCS = ["The capital of France is Paris.", "Bananas are rich in potassium."]


def test_scores_are_the_embeddings_cosines(llm):
    scores = llm.score(QUERY, DOCS, use_tqdm=False)
    embedded = {t: o.outputs.embedding for t, o in
                zip([QUERY, *DOCS], llm.embed([QUERY, *DOCS], use_tqdm=False))}
    for doc, out in zip(DOCS, scores):
        expected = sum(x * y for x, y in zip(embedded[QUERY], embedded[doc]))
        assert out.outputs.score == pytest.approx(expected, abs=1e-6)
        assert len(out.prompt_token_ids) > 0 and out.finished
    assert scores[0].outputs.score > scores[1].outputs.score  # Paris answers the question
    pairwise = llm.score([QUERY, DOCS[0]], [DOCS[0], DOCS[0]], use_tqdm=False)
    assert pairwise[0].outputs.score == pytest.approx(scores[0].outputs.score, abs=1e-6)
    assert pairwise[1].outputs.score == pytest.approx(1.0, abs=1e-5)  # a text with itself


@pytest.mark.parametrize("text_1,text_2,param", [([], ["a"], "text_1"), ("a", [], "text_2"),
                                                 (["a", "b"], ["c", "d", "e"], "text_1")])
def test_texts_that_dont_pair_up(text_1, text_2, param):
    with pytest.raises(ScoreInputError) as error:
        score_pairs(text_1, text_2)
    assert error.value.param == param
