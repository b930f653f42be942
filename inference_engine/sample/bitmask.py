"""Token masks of structured outputs: one bit per vocabulary entry, 32 to an int32 word, as
xgrammar's matchers fill them."""
import torch

BITS = 32


_batch_matcher = None  # xgrammar's BatchGrammarMatcher, made on first use


def fill_bitmasks(matchers: list, vocab_size: int) -> torch.Tensor:
    """[len(matchers), ceil(vocab_size / 32)] int32 on the host: bit t of row i set when the
    i-th matcher allows token t next. Several rows are filled on xgrammar's threads (faster than
    one by one, the more so the more cores: docs/performance.md)."""
    global _batch_matcher
    bitmask = torch.full((len(matchers), -(-vocab_size // BITS)), -1, dtype=torch.int32)
    if len(matchers) == 1:
        matchers[0].fill_next_token_bitmask(bitmask, 0)
        return bitmask
    if _batch_matcher is None:
        import xgrammar
        _batch_matcher = xgrammar.BatchGrammarMatcher()
    _batch_matcher.batch_fill_next_token_bitmask(matchers, bitmask)
    return bitmask


def apply_token_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Sets logits[i, t] to -inf where bit t of bitmask row i is clear; returns the logits.
    `bitmask` must be on the logits' device; words past the vocabulary are ignored."""
    vocab_size = logits.shape[-1]
    shifts = torch.arange(BITS, dtype=torch.int32, device=bitmask.device)
    allowed = ((bitmask.unsqueeze(-1) >> shifts) & 1).bool().flatten(1)[:, :vocab_size]
    return logits.masked_fill_(~allowed, float("-inf"))
