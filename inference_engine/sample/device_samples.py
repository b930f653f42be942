"""A step's sampled tokens while they are still on the device, and their one read to the host.

With async scheduling the engine launches the next step, whose decode rows take these tokens as
inputs on the device, before it reads them here: the read is a non-blocking copy into pinned
memory started as soon as the sampling kernels are queued, and an event says when it has landed.
"""
from dataclasses import dataclass

import torch

from inference_engine.sample.metadata import SamplingMetadata
from inference_engine.sequence import Logprob


@dataclass
class Sample:
    """One sampled token, with its log-probability."""
    token_id: int
    logprob: float
    top_logprobs: dict[int, Logprob] | None  # the sampled token and the top-k, when asked


@dataclass
class SamplerOutput:
    """A step's samples, read to the host."""
    samples: list[list[Sample]]  # per SampleRow, num_samples each
    # Per PromptLogprobRows, one per prompt token after the first.
    prompt_logprobs: list[list[dict[int, Logprob]]]
    meta: SamplingMetadata  # the rows the lists above belong to
    # Per row: an embedding request's embedding, else None (all None without such rows).
    embeddings: list[list[float] | None] | None = None


def _copy_to_host(t: torch.Tensor) -> torch.Tensor:
    if t.device.type != "cuda":
        return t
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    return host.copy_(t, non_blocking=True)


class DeviceSamples:
    """The sampled token ids [S] (row i's num_samples back to back) on the device, with the
    log-probabilities asked for; `read()` waits for their copy and returns the SamplerOutput."""

    def __init__(self, token_ids: torch.Tensor | None, row_of: torch.Tensor | None,
                 raw_logprobs: torch.Tensor | None,
                 prompt_logprobs: list[list[dict[int, Logprob]]], meta: SamplingMetadata,
                 chosen: torch.Tensor | None = None, pooled: torch.Tensor | None = None):
        self.token_ids = token_ids
        self.meta = meta
        self.prompt_logprobs = prompt_logprobs
        self._wanted = [r.params.logprobs for r in meta.rows]
        on_device: dict[str, torch.Tensor] = {}
        if token_ids is not None:
            if chosen is None:  # else the sampler computed the tokens' log-probabilities
                chosen = raw_logprobs[row_of, token_ids]
            on_device = {"token_ids": token_ids, "chosen": chosen}
            if any(k is not None for k in self._wanted):
                on_device["ranks"] = (raw_logprobs[row_of] > chosen[:, None]).sum(-1) + 1
                k_max = max((k or 0) for k in self._wanted)
                if k_max:
                    top = raw_logprobs.topk(k_max, dim=-1)
                    on_device["top_vals"], on_device["top_ids"] = top.values, top.indices
        if pooled is not None:  # the pooled hidden states of the embedding requests' rows
            on_device["pooled"] = pooled
        self._host = {name: _copy_to_host(t) for name, t in on_device.items()}
        self._copied = None
        if token_ids is not None and token_ids.device.type == "cuda":
            self._copied = torch.cuda.Event()
            self._copied.record()

    def read(self) -> SamplerOutput:
        """The samples on the host; blocks until the device has produced them."""
        if self._copied is not None:
            self._copied.synchronize()
        rows = self.meta.rows
        if not rows:
            return SamplerOutput([], self.prompt_logprobs, self.meta)
        host = {name: t.tolist() for name, t in self._host.items()}
        tokens, chosen = host["token_ids"], host["chosen"]
        ranks, top_vals, top_ids = host.get("ranks"), host.get("top_vals"), host.get("top_ids")
        row_of = (range(len(rows)) if len(tokens) == len(rows)
                  else [i for i, row in enumerate(rows) for _ in range(row.num_samples)])
        wanted = self._wanted
        out: list[list[Sample]] = [[] for _ in rows]
        for j, (token, lp, i) in enumerate(zip(tokens, chosen, row_of)):
            entries = None
            if wanted[i] is not None:
                entries = {token: Logprob(lp, ranks[j])}
                for r in range(wanted[i]):
                    entries.setdefault(top_ids[i][r], Logprob(top_vals[i][r], r + 1))
            out[i].append(Sample(token, lp, entries))
        return SamplerOutput(out, self.prompt_logprobs, self.meta, self._embeddings(host))

    def _embeddings(self, host: dict) -> list[list[float] | None] | None:
        if "pooled" not in host:
            return None
        pooled = iter(host["pooled"])
        return [pooling.finish(next(pooled)) if pooling is not None else None
                for pooling in self.meta.pooling]
