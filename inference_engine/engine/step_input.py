"""A step's input, laid out on the engine's side: the ModelInput every rank runs the model on,
and the SamplingMetadata the driver samples with (they go to the workers in one call).

The prefills' tokens come first (whole prompts less any cached prefix, or chunks of them), then
speculative decoding's rows (a sequence's last token and drafts, laid out as a prompt's chunk),
then one token per decoding sequence.

With async scheduling a decoding sequence's input may be the token the step in flight samples,
which only the device holds yet: the input names its place among that step's samples, which
this builder remembers from the step before (`_sample_index`).
"""
from dataclasses import dataclass, field

import numpy as np
import torch

from inference_engine.core.scheduler import SchedulerOutputs
from inference_engine.lora.step_input import step_loras
from inference_engine.model_executor.forward_context import AttentionMetadata
from inference_engine.model_executor.layers.pooler import pooling_chunk
from inference_engine.sample.metadata import PromptLogprobRows, SampleRow, SamplingMetadata
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus
from inference_engine.worker.model_input import ModelInput, block_tables_tensor, cache_slots


@dataclass
class StepRows:
    """The engine's side of a step's SamplingMetadata: whose each row is."""
    seqs: list[tuple[SequenceGroup, Sequence]] = field(default_factory=list)  # per SampleRow
    prompt_groups: list[SequenceGroup] = field(default_factory=list)  # per PromptLogprobRows

    def add(self, meta: SamplingMetadata, group: SequenceGroup, seq: Sequence,
            num_samples: int = 1, draft: int | None = None) -> None:
        """A row sampling `seq`, with what sampling reads of it."""
        meta.rows.append(SampleRow(group.sampling_params, seq.prompt_token_ids,
                                   seq.output_token_ids, seq.num_pending, seq.grammar,
                                   group.generator, num_samples, draft))
        self.seqs.append((group, seq))


class StepInputBuilder:
    def __init__(self, block_size: int, with_loras: bool, async_scheduling: bool):
        self.block_size = block_size
        self.with_loras = with_loras
        self.async_scheduling = async_scheduling
        # Each sequence's first token among the last step's samples (async scheduling).
        self._sample_index: dict[int, int] = {}

    def build(self, sched: SchedulerOutputs) -> tuple[ModelInput, SamplingMetadata, StepRows]:
        tokens, positions, slots, tables, seq_lens, starts = [], [], [], [], [], [0]
        meta, owners = SamplingMetadata(), StepRows()

        def add_span(seq, start: int, end: int) -> None:  # tokens start..end-1 of seq
            positions.append(np.arange(start, end))
            slots.append(cache_slots(seq.block_table, start, end, self.block_size))
            tables.append(seq.block_table)
            seq_lens.append(end)
            starts.append(starts[-1] + end - start)

        for group in sched.prefill_seq_groups:
            first = group.is_first_prefill
            for seq in group.get_seqs(SequenceStatus.RUNNING):
                start, end = sched.prefill_chunks[seq.seq_id]
                offset = len(tokens)
                tokens += seq.token_ids[start:end]
                add_span(seq, start, end)
                if first and group.wants_prompt_logprobs:  # (whole: never cached nor chunked)
                    meta.prompt_rows.append(PromptLogprobRows(
                        group.prompt_token_ids, group.sampling_params.prompt_logprobs, offset))
                    owners.prompt_groups.append(group)
                chunk = (pooling_chunk(group, seq, start, end, offset)
                         if group.pooling_params is not None else None)
                if chunk is not None:
                    meta.pooling_chunks.append(chunk)
                if end < len(seq):
                    continue  # a chunk of its prefill: it samples after the last
                owners.add(meta, group, seq, group.sampling_params.best_of if first else 1)
                meta.sample_indices.append(offset + end - start - 1)
        decode_rows = sched.decode_rows()
        for group, seq, drafts in decode_rows:
            if not drafts:
                break  # (those with drafts come first)
            # Its last token and drafts, over its cache as a prompt's chunk would be: every
            # position samples, and the engine keeps the drafts that hold and one token more.
            offset = len(tokens)
            tokens += [seq.last_token_id] + drafts
            add_span(seq, len(seq) - 1, len(seq) + len(drafts))
            for j, draft in enumerate(drafts + [-1]):
                owners.add(meta, group, seq, draft=draft)
                meta.sample_indices.append(offset + j)
        num_prefills, num_prefill_tokens = len(seq_lens), len(tokens)
        bs = self.block_size
        decode_positions, decode_slots, from_samples = [], [], []
        for group, seq, drafts in decode_rows:
            if drafts:
                continue  # laid out above
            pos = len(seq) + seq.num_pending - 1
            owners.add(meta, group, seq)
            meta.sample_indices.append(len(tokens))
            if seq.num_pending:  # the input is the token the step in flight samples
                from_samples.append((len(tokens), self._sample_index[seq.seq_id]))
                tokens.append(0)
            else:
                tokens.append(seq.last_token_id)
            decode_positions.append(pos)
            decode_slots.append(seq.block_table[pos // bs] * bs + pos % bs)
            tables.append(seq.block_table)
            seq_lens.append(pos + 1)
        positions.append(np.asarray(decode_positions, dtype=np.int64))
        slots.append(np.asarray(decode_slots, dtype=np.int64))
        query_lens = np.diff(starts)
        attn = AttentionMetadata(
            torch.from_numpy(np.concatenate(slots)), block_tables_tensor(tables),
            torch.tensor(seq_lens, dtype=torch.int32), num_prefills, num_prefill_tokens,
            torch.tensor(starts, dtype=torch.int32) if num_prefills else None, max(seq_lens),
            int(query_lens.max()) if num_prefills else 1)
        model_input = ModelInput(
            torch.tensor(tokens, dtype=torch.int64), torch.from_numpy(np.concatenate(positions)), attn,
            self._logits_rows(meta), sched.blocks_to_copy,
            torch.tensor(from_samples, dtype=torch.int64) if from_samples else None, bool(meta.pooling_chunks),
            *(step_loras(sched) if self.with_loras else (None, None)))
        if meta.pooling_chunks:
            meta.pooling = [group.pooling_params for group, _ in owners.seqs]
        self._remember_samples(meta, owners)
        return model_input, meta, owners

    def _remember_samples(self, meta: SamplingMetadata, owners: StepRows) -> None:
        """For the penalties, where each row's sequence has its token in flight among the last
        step's samples (-1 for none); then where this step's samples will be."""
        if not self.async_scheduling:
            return
        if any(row.params.needs_penalties and row.num_pending for row in meta.rows):
            meta.pending_index = [self._sample_index[seq.seq_id] if seq.num_pending else -1
                                  for _, seq in owners.seqs]
        self._sample_index, index = {}, 0
        for row, (_, seq) in zip(meta.rows, owners.seqs):
            self._sample_index[seq.seq_id] = index
            index += row.num_samples

    @staticmethod
    def _logits_rows(meta: SamplingMetadata) -> torch.Tensor:
        """The hidden-state rows whose logits the sampler reads; renumbers meta's rows to their
        place among those logits."""
        if not meta.prompt_rows:  # the sampled rows alone, already in increasing order
            rows = meta.sample_indices
            meta.sample_indices = list(range(len(rows)))
            return torch.tensor(rows, dtype=torch.int64)
        rows = sorted(set(meta.sample_indices)
                      | {pr.start + j for pr in meta.prompt_rows
                         for j in range(len(pr.prompt_token_ids))})
        where = {row: i for i, row in enumerate(rows)}
        meta.sample_indices = [where[i] for i in meta.sample_indices]
        for pr in meta.prompt_rows:
            pr.start = where[pr.start]
        return torch.tensor(rows, dtype=torch.int64)
