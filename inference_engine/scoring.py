"""Scoring text pairs with an embedding model (vLLM's `LLM.score` and `/score`): the cosine
similarity of the two texts' normalized embeddings."""
from dataclasses import dataclass


class ScoreInputError(ValueError):
    """Texts that do not pair up; `param` names the field (text_1 or text_2)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def score_pairs(text_1: str | list[str], text_2: str | list[str]) -> list[tuple[str, str]]:
    """The pairs to score: one text_1 against every text_2, or text_1[i] against text_2[i]."""
    firsts = [text_1] if isinstance(text_1, str) else list(text_1)
    seconds = [text_2] if isinstance(text_2, str) else list(text_2)
    if not firsts or not seconds:
        raise ScoreInputError("text_1" if not firsts else "text_2",
                              "text_1 and text_2 must not be empty")
    if len(firsts) == 1:
        firsts = firsts * len(seconds)
    if len(firsts) != len(seconds):
        raise ScoreInputError("text_1", f"text_1 has {len(firsts)} texts and text_2 "
                              f"{len(seconds)}: give one text_1, or as many as text_2")
    return list(zip(firsts, seconds))


def cosine(a: list[float], b: list[float]) -> float:
    """The similarity of two normalized embeddings."""
    return sum(x * y for x, y in zip(a, b))


@dataclass
class ScoringOutput:
    score: float


@dataclass
class ScoringRequestOutput:
    """One pair's score, as LLM.score returns it (vLLM's shape)."""
    request_id: str
    outputs: ScoringOutput
    prompt_token_ids: list[int]  # the two texts' token ids, one after the other
    finished: bool = True
