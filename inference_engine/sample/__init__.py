"""Logits to tokens, on the driver worker: the rows a step samples and what each needs
(metadata.py), the sampler's processing and draws (sampler.py), masks (token_restrictions.py,
bitmask.py), speculative decoding's draft checks (rejection.py) and the samples' one read to the
host (device_samples.py)."""
