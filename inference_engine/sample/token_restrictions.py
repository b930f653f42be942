"""`allowed_token_ids` and `bad_words` (vLLM's sampling parameters) as masks on the logits (their
token sequences come from engine/request_checks.py).

A bad word is banned as whole tokens: each of its token sequences (the word alone and after a
space, as it reads at the start of a text and inside one) loses its last token whenever the
output so far ends with the tokens before it; a one-token word is never sampled.
"""
import torch

from inference_engine.sample.metadata import SamplingMetadata, device_tensor


def banned_next(sequences: list[list[int]], output_ids: list[int]) -> list[int]:
    """The tokens that would complete a bad word after `output_ids`."""
    banned = []
    for ids in sequences:
        before = ids[:-1]
        if len(before) <= len(output_ids) and output_ids[len(output_ids) - len(before):] == before:
            banned.append(ids[-1])
    return banned


def apply_token_restrictions(logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
    for i, row in enumerate(meta.rows):
        p = row.params
        if p.allowed_token_ids is not None:
            keep = device_tensor(p.allowed_token_ids, torch.int64, logits.device)
            masked = torch.full_like(logits[i], float("-inf"))
            masked[keep] = logits[i, keep]
            logits[i] = masked
        if p.bad_words_token_ids:
            banned = banned_next(p.bad_words_token_ids, row.output_token_ids)
            if banned:
                logits[i, device_tensor(banned, torch.int64, logits.device)] = float("-inf")
    return logits
