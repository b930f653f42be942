"""Parallel layers built as one rank of several would build them, in one process: the rank and
world size patched in, the collectives made identities so that a test combines the ranks'
partial results itself."""
from inference_engine.model_executor.layers import linear, vocab_embedding


def use_rank(monkeypatch, rank: int, world: int) -> None:
    for module in (linear, vocab_embedding):
        monkeypatch.setattr(module, "get_tp_world_size", lambda: world)
        monkeypatch.setattr(module, "get_tp_rank", lambda: rank)
        monkeypatch.setattr(module, "all_reduce", lambda x: x)
    monkeypatch.setattr(vocab_embedding, "gather_to_rank0", lambda x, dim=-1: x)
