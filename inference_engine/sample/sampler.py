"""Turns logits into tokens: penalties, bias, structured outputs' token masks, temperature,
top-k/top-p/min-p, then sampling.

Reported log-probabilities are those of the model's raw distribution (before any processing).
Sampling is an exponential race: argmax(p / E) with E ~ Exp(1) is distributed as p. Seeded
requests draw their E from their own generator, so their tokens do not depend on what else is in
the batch.
"""

import torch
from torch import nn

from inference_engine import envs, ops
from inference_engine.sample.bitmask import apply_token_bitmask, fill_bitmasks
from inference_engine.sample.device_samples import DeviceSamples, SamplerOutput
from inference_engine.sample.metadata import SamplingMetadata, SamplingTensors, device_tensor
from inference_engine.sample.rejection import accept_or_resample
from inference_engine.sample.token_restrictions import apply_token_restrictions
from inference_engine.sequence import Logprob

# A step whose rows are all plain greedy (no penalties, bias, min_tokens, logprobs or best_of)
# takes the one-pass greedy_sample op; INFERENCE_ENGINE_FUSED_GREEDY=0 takes the general path, to
# compare.
FUSED_GREEDY = not envs.is_off(envs.FUSED_GREEDY)


class Sampler(nn.Module):
    def __init__(self, vocab_size: int, eos_token_id: int | None):
        super().__init__()
        self.vocab_size = vocab_size
        self.eos_token_id = eos_token_id

    def forward(self, logits: torch.Tensor, meta: SamplingMetadata) -> SamplerOutput:
        return self.sample_on_device(logits, meta).read()

    def sample_on_device(self, logits: torch.Tensor, meta: SamplingMetadata,
                         pooled: torch.Tensor | None = None) -> DeviceSamples:
        """Queues the sampling kernels and the copy of their result (and of `pooled`, embedding
        requests' pooled hidden states) to the host without waiting for the device (but prompt
        log-probabilities, rarely asked for, are read at once)."""
        prompt_logprobs = [self._prompt_logprobs(logits, pr) for pr in meta.prompt_rows]
        if not meta.rows:
            return DeviceSamples(None, None, None, prompt_logprobs, meta)
        if meta.sample_indices != list(range(logits.shape[0])):  # else: every row is sampled
            logits = logits[device_tensor(meta.sample_indices, torch.int64, logits.device)]
        if FUSED_GREEDY and all(self._plain_greedy(row) for row in meta.rows):
            tokens, chosen = ops.greedy_sample(logits)
            return DeviceSamples(tokens, None, None, prompt_logprobs, meta, chosen=chosen,
                                 pooled=pooled)
        logits = logits.float()
        raw_logprobs = torch.log_softmax(logits, dim=-1)
        params = [row.params for row in meta.rows]
        # Greedy rows without penalties need no per-row knobs on the device.
        t = None
        if not all(p.is_greedy and not p.needs_penalties for p in params):
            t = SamplingTensors.build(meta.rows, logits.shape[-1], logits.device,
                                      meta.pending_tokens)
        logits = self._apply_min_tokens(logits, meta)
        if t is not None and t.output_counts is not None:
            logits = apply_penalties(logits, t)
        logits = self._apply_logit_bias(logits, meta)
        if any(p.restricts_tokens for p in params):
            logits = apply_token_restrictions(logits, meta)
        logits = self._apply_structured_outputs(logits, meta)
        tokens, row_of = self._sample(logits, t, meta)
        return DeviceSamples(tokens, row_of, raw_logprobs, prompt_logprobs, meta, pooled=pooled)

    def _plain_greedy(self, row) -> bool:
        p = row.params
        return (p.is_greedy and not p.needs_penalties and not p.logit_bias and p.logprobs is None
                and not p.restricts_tokens
                and row.num_samples == 1 and not row.in_min_tokens
                and row.grammar is None)

    def _apply_min_tokens(self, logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
        for i, row in enumerate(meta.rows):
            p = row.params
            if row.in_min_tokens:
                banned = list(p.stop_token_ids)
                if self.eos_token_id is not None and not p.ignore_eos:
                    banned.append(self.eos_token_id)
                logits[i, device_tensor(banned, torch.int64, logits.device)] = float("-inf")
        return logits

    @staticmethod
    def _apply_logit_bias(logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
        for i, row in enumerate(meta.rows):
            bias = row.params.logit_bias
            if bias:
                ids = device_tensor(list(bias), torch.int64, logits.device)
                logits[i, ids] += device_tensor(list(bias.values()), logits.dtype, logits.device)
        return logits

    @staticmethod
    def _apply_structured_outputs(logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
        """Rows of structured outputs keep only the tokens their grammar allows next. (The
        engine reads a step's tokens before the next one samples such rows, so each matcher has
        accepted every token before.)"""
        rows = [i for i, row in enumerate(meta.rows) if row.grammar is not None]
        if rows:
            bitmask = fill_bitmasks([meta.rows[i].grammar for i in rows], logits.shape[-1])
            index = device_tensor(rows, torch.int64, logits.device)
            logits[index] = apply_token_bitmask(logits[index],
                                                bitmask.to(logits.device, non_blocking=True))
        return logits

    def _sample(self, logits: torch.Tensor, t: SamplingTensors | None,
                meta: SamplingMetadata) -> tuple[torch.Tensor, torch.Tensor]:
        """All sampled tokens, row i's num_samples back to back: (token ids [S], their row [S]),
        on the device."""
        device = logits.device
        counts = [row.num_samples for row in meta.rows]
        if any(c > 1 for c in counts):
            row_of = device_tensor([i for i, c in enumerate(counts) for _ in range(c)],
                                   torch.int64, device)
        else:
            row_of = torch.arange(len(counts), device=device)
        tokens = logits.argmax(dim=-1)[row_of]
        greedy = [row.params.is_greedy for row in meta.rows]
        if all(greedy):
            return tokens, row_of
        logits = logits / t.temperature.unsqueeze(1)
        if t.do_top_p_top_k:
            logits = apply_top_k_top_p(logits, t.top_k, t.top_p)
        probs = torch.softmax(logits, dim=-1)
        if t.do_min_p:
            probs = apply_min_p(probs, t.min_p)
        probs = probs[row_of] if len(row_of) != len(counts) else probs
        noise = torch.empty_like(probs).exponential_()
        start = 0
        for row, n in zip(meta.rows, counts):
            if row.generator is not None:  # a seeded request draws from its own stream
                noise[start:start + n].exponential_(generator=row.generator)
            start += n
        drafts = [-1 if row.draft is None else row.draft for row in meta.rows]
        if any(d >= 0 for d in drafts):  # speculative decoding: rows checking a draft
            drafts = device_tensor(drafts, torch.int64, device)[row_of]
            drawn = accept_or_resample(probs, drafts, self._uniform(meta, device), noise)
        else:
            drawn = (probs / noise).argmax(dim=-1)
        is_greedy = device_tensor(greedy, torch.bool, device)[row_of]
        return torch.where(is_greedy, tokens, drawn), row_of

    @staticmethod
    def _uniform(meta: SamplingMetadata, device: torch.device) -> torch.Tensor:
        """[S] uniform draws for the draft checks, a seeded request's from its own stream."""
        uniform = torch.rand(sum(row.num_samples for row in meta.rows), device=device)
        start = 0
        for row in meta.rows:
            if row.generator is not None and row.draft is not None and row.draft >= 0:
                uniform[start:start + row.num_samples] = torch.rand(
                    row.num_samples, device=device, generator=row.generator)
            start += row.num_samples
        return uniform

    @staticmethod
    def _prompt_logprobs(logits: torch.Tensor, pr) -> list[dict[int, Logprob]]:
        prompt, k = pr.prompt_token_ids, pr.top
        logprobs = torch.log_softmax(logits[pr.start:pr.start + len(prompt) - 1].float(), dim=-1)
        targets = torch.tensor(prompt[1:], device=logits.device)
        chosen = logprobs.gather(1, targets[:, None])
        ranks = ((logprobs > chosen).sum(-1) + 1).tolist()
        top = logprobs.topk(k, dim=-1) if k else None
        out = []
        for j, (token, lp, rank) in enumerate(zip(prompt[1:], chosen[:, 0].tolist(), ranks)):
            entries = {token: Logprob(lp, rank)}
            if top is not None:
                for r, (tid, val) in enumerate(zip(top.indices[j].tolist(), top.values[j].tolist())):
                    entries.setdefault(tid, Logprob(val, r + 1))
            out.append(entries)
        return out


def apply_penalties(logits: torch.Tensor, t: SamplingTensors) -> torch.Tensor:
    """Repetition penalty over prompt and output tokens; frequency and presence over the output."""
    seen = t.prompt_mask | (t.output_counts > 0)
    rep = t.repetition.unsqueeze(1).expand_as(logits)
    scaled = torch.where(logits > 0, logits / rep, logits * rep)
    logits = torch.where(seen, scaled, logits)
    logits = logits - t.frequency.unsqueeze(1) * t.output_counts
    return logits - t.presence.unsqueeze(1) * (t.output_counts > 0)


def apply_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keeps each row's top_k tokens, then the smallest set of those whose renormalised
    probability reaches top_p (always at least the most likely token)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    positions = torch.arange(logits.shape[-1], device=logits.device)
    sorted_logits = sorted_logits.masked_fill(positions[None, :] >= top_k[:, None], float("-inf"))
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of strictly more likely tokens
    sorted_logits = sorted_logits.masked_fill(before >= top_p[:, None], float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def apply_min_p(probs: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Drops tokens less likely than min_p times the row's most likely token."""
    threshold = min_p.unsqueeze(1) * probs.max(dim=-1, keepdim=True).values
    return probs.masked_fill(probs < threshold, 0.0)
