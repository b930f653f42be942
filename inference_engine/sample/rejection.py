"""Checking drafts against the model's distribution (Leviathan et al., 2023; Chen et al., 2023).

A draft token d at a position whose target distribution is p is kept with probability p(d);
else the position's token is drawn from p with d taken out (renormalized). With a draft that is
a fixed guess (the n-gram proposer's: q puts all its mass on d) that gives exactly p: d comes
out with p(d), any other t with (1 - p(d)) * p(t) / (1 - p(d)). Greedy rows keep a draft iff it
is the argmax, which is then their token anyway.
"""
import torch


def accept_or_resample(probs: torch.Tensor, drafts: torch.Tensor, uniform: torch.Tensor,
                       noise: torch.Tensor) -> torch.Tensor:
    """[R] tokens for rows with target distributions `probs` [R, V]: rows with a draft
    (`drafts` >= 0) keep it when `uniform` < p(draft), else draw from p without it; rows
    without (-1) draw from p. Draws are exponential races, argmax(p / noise) with
    noise ~ Exp(1) [R, V], so a token equals its row's draft iff the draft was kept."""
    has = drafts >= 0
    index = drafts.clamp(min=0)[:, None]
    p_draft = probs.gather(1, index)[:, 0]
    keep = has & (uniform < p_draft)
    residual = probs.scatter(1, index, torch.where(has, 0.0, p_draft)[:, None].to(probs.dtype))
    drawn = (residual / noise).argmax(dim=-1)
    return torch.where(keep, drafts, drawn)
