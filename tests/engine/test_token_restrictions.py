"""allowed_token_ids and bad_words on the embedded model: sampled tokens stay within the allowed
set; a bad word (one token or several, at the start or after a space) never appears, where
without the ban the greedy answer has it; with async scheduling too; bad values are refused."""
import pytest

from inference_engine import LLM, SamplingParams
from inference_engine.engine.request_checks import bad_words_token_ids
from inference_engine.sample.token_restrictions import banned_next

PROMPT = "The capital of France is"


def test_banned_next_completes_only_a_matching_prefix():
    words = [[7], [1, 2, 3]]
    assert banned_next(words, []) == [7]
    assert banned_next(words, [5, 1, 2]) == [7, 3]
    assert banned_next(words, [1, 2, 5]) == [7]


@pytest.fixture(scope="module", params=[False, True], ids=["sync", "async"])
def restricted_llm(request, embedded_path):
    llm = LLM(dtype="float32", max_model_len=256, cpu_kv_cache_space_gib=0.25,
              async_scheduling=request.param)
    yield llm
    llm.shutdown()


def text_of(llm, **params) -> tuple[str, list[int]]:
    out = llm.generate([PROMPT], SamplingParams(temperature=0, max_tokens=16, **params),
                       use_tqdm=False)[0].outputs[0]
    return out.text, out.token_ids


def test_allowed_token_ids_bound_every_sample(restricted_llm):
    _, free = text_of(restricted_llm)
    allowed = sorted(set(free[1:6]) | {11, 12, 13})  # not the greedy first token
    for params in ({"temperature": 0}, {"temperature": 1.0, "seed": 3}):
        out = restricted_llm.generate([PROMPT], SamplingParams(
            max_tokens=12, allowed_token_ids=allowed, **params), use_tqdm=False)[0].outputs[0]
        assert out.token_ids and set(out.token_ids) <= set(allowed)
    assert free[0] not in allowed


def test_bad_words_never_appear(restricted_llm):
    free, free_ids = text_of(restricted_llm)
    assert free.startswith(" Paris.") and "The answer is" in free
    banned, _ = text_of(restricted_llm, bad_words=["Paris"])  # one token
    assert "Paris" not in banned
    sequences = bad_words_token_ids(restricted_llm.get_tokenizer(), ["answer is"])
    two = [seq for seq in sequences if len(seq) == 2 and seq[0] in free_ids]
    assert two  # " answer is": two tokens, both in the free answer
    text, ids = text_of(restricted_llm, bad_words=["answer is"])
    assert text.startswith(" Paris.") and text != free  # the first token after " answer"
    for seq in sequences:
        assert not any(ids[i:i + len(seq)] == seq for i in range(len(ids)))


def test_bad_values_are_refused(restricted_llm):
    vocab = restricted_llm.llm_engine.config.model_config.hf_config.vocab_size
    with pytest.raises(ValueError, match=r"allowed_token_ids must be token ids in \[0, "):
        text_of(restricted_llm, allowed_token_ids=[vocab])
    with pytest.raises(ValueError, match="allowed_token_ids must not be empty"):
        SamplingParams(allowed_token_ids=[])
    with pytest.raises(ValueError, match="bad_words must not be empty"):
        SamplingParams(bad_words=[" "])
