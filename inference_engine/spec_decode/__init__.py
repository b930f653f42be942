"""Speculative decoding: cheap guesses of a sequence's next tokens (drafts), checked by the model
in one step, so a step may give a sequence several tokens. Greedy outputs stay exactly those
of decoding without drafts; sampled ones keep their distribution (sample/rejection.py)."""
