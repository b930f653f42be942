"""n-gram drafts (prompt lookup decoding): text that quotes its prompt, code that repeats its
identifiers, lists that follow a pattern tend to go on as they went before. Drafts cost no
model run; a wrong one costs a step a few extra rows."""
import numpy as np

from inference_engine.spec_decode.config import SpeculativeConfig


class NgramProposer:
    def __init__(self, config: SpeculativeConfig):
        self.k = config.num_speculative_tokens
        self.n_min = config.prompt_lookup_min
        self.n_max = config.prompt_lookup_max

    def propose(self, token_ids: list[int], max_drafts: int) -> list[int]:
        """Up to min(k, max_drafts) tokens: those after the latest earlier occurrence of the
        longest suffix of `token_ids` (n_max down to n_min tokens) found before; none when no
        suffix recurs."""
        k = min(self.k, max_drafts)
        if k <= 0 or len(token_ids) <= self.n_min:
            return []
        tokens = np.asarray(token_ids, dtype=np.int64)
        last = len(tokens) - 1
        # Ends of earlier matches of the last token; each longer suffix keeps those whose
        # token before matches too (few candidates survive the first filter).
        ends = np.flatnonzero(tokens[:last] == tokens[last])
        best = None
        for n in range(1, min(self.n_max, last) + 1):
            if n > 1:
                ends = ends[ends >= n - 1]
                ends = ends[tokens[ends - (n - 1)] == tokens[last - (n - 1)]]
            if not len(ends):
                break
            if n >= self.n_min:
                best = int(ends[-1])  # the latest occurrence of the longest suffix so far
        if best is None:
            return []
        return tokens[best + 1:best + 1 + k].tolist()
