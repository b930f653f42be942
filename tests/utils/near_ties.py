"""Where two greedy generations first part, was it a near-tie?

In a 16-bit dtype two correct implementations round differently, and greedy decoding turns the
first logit that moves past its runner-up into a different continuation. A real bug shows up
as a token the other side finds unlikely; a rounding difference as a token both sides rank near
the top. So, per prompt, the first position where the tokens differ is checked: each side's
token must be among the other's top-k. (The same criterion as vLLM's comparison of its 16-bit
outputs with transformers'.) Positions after the first difference are not compared: the two
sides no longer share a prefix there.
"""
from dataclasses import dataclass

import torch


@dataclass
class Generation:
    tokens: list[int]
    top: list[dict[int, float]]  # per position: the top-k token ids with their log-probabilities


@dataclass
class Divergence:
    prompt: int
    position: int
    ours: int
    theirs: int
    ours_in_their_top: bool
    theirs_in_our_top: bool
    gap: float | None  # their log-probability of their token minus of ours, where they rank ours

    @property
    def is_near_tie(self) -> bool:
        return self.ours_in_their_top and self.theirs_in_our_top


def hf_greedy_top(model, prompt_ids: list[int], max_new_tokens: int, k: int) -> Generation:
    """transformers' greedy tokens (EOS allowed but never stopping) with the top-k
    log-probabilities of its raw logits at every step."""
    ids = torch.tensor([prompt_ids], device=model.device)
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0,
                             attention_mask=torch.ones_like(ids), eos_token_id=None,
                             output_logits=True, return_dict_in_generate=True)
    tokens = out.sequences[0, len(prompt_ids):].tolist()
    top = []
    for logits in out.logits:
        values, indices = torch.log_softmax(logits[0].float(), dim=-1).topk(k)
        top.append(dict(zip(indices.tolist(), values.tolist())))
    return Generation(tokens, top)


def engine_generation(completion) -> Generation:
    """Our CompletionOutput (asked with logprobs=k) as a Generation."""
    top = [{token: lp.logprob for token, lp in entries.items()} for entries in completion.logprobs]
    return Generation(list(completion.token_ids), top)


def first_divergences(ours: list[Generation], theirs: list[Generation]) -> list[Divergence]:
    """The first differing position of every pair that differs."""
    found = []
    for prompt, (a, b) in enumerate(zip(ours, theirs)):
        pos = next((i for i, (x, y) in enumerate(zip(a.tokens, b.tokens)) if x != y), None)
        if pos is None:
            continue
        x, y = a.tokens[pos], b.tokens[pos]
        gap = b.top[pos][y] - b.top[pos][x] if x in b.top[pos] else None
        found.append(Divergence(prompt, pos, x, y, x in b.top[pos], y in a.top[pos], gap))
    return found


def summary(divergences: list[Divergence], num_prompts: int) -> str:
    near = [d for d in divergences if d.is_near_tie]
    gaps = sorted(d.gap for d in divergences if d.gap is not None)
    median = f"{gaps[len(gaps) // 2]:.3f}" if gaps else "n/a"
    return (f"{num_prompts - len(divergences)} of {num_prompts} prompts identical; "
            f"{len(near)} of {len(divergences)} first divergences are near-ties "
            f"(median log-probability gap {median} nats)")
