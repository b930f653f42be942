"""Draft checks keep the target distribution: over many draws, each token comes out as often as
its probability says, whatever the draft; a draft comes out iff it was kept."""
import pytest
import torch

from inference_engine.sample.rejection import accept_or_resample

PROBS = torch.tensor([0.05, 0.4, 0.3, 0.0, 0.15, 0.1])
DRAWS = 200_000


@pytest.mark.parametrize("draft", [-1, 0, 1, 3, 5])
def test_tokens_follow_the_target_distribution(draft):
    gen = torch.Generator().manual_seed(draft + 10)
    probs = PROBS.expand(DRAWS, -1).contiguous()
    drafts = torch.full((DRAWS,), draft)
    uniform = torch.rand(DRAWS, generator=gen)
    noise = torch.empty(DRAWS, len(PROBS)).exponential_(generator=gen)
    tokens = accept_or_resample(probs, drafts, uniform, noise)
    freq = torch.bincount(tokens, minlength=len(PROBS)).float() / DRAWS
    assert torch.allclose(freq, PROBS, atol=0.005), freq
    if draft >= 0:  # the draft's share is exactly the draws kept
        kept = (uniform < PROBS[draft]).float().mean()
        assert freq[draft] == pytest.approx(float(kept))


def test_rows_mix_drafts_and_none():
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.0, 0.8]])
    drafts = torch.tensor([1, 0, -1])
    uniform = torch.tensor([0.99, 0.6, 0.0])
    noise = torch.ones(3, 3)
    # Row 0: p(draft) = 1 keeps it; row 1: 0.6 >= 0.5 rejects token 0, leaving token 1;
    # row 2: no draft, the race's winner.
    assert accept_or_resample(probs, drafts, uniform, noise).tolist() == [1, 1, 2]
