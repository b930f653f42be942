"""Builds a step's input tensors from the scheduled requests, runs the model and samples.

With tensor parallelism the driver (rank 0) prepares the inputs and samples; every rank runs
the model on the same ModelInput.
"""
import gc
import itertools
import logging
import time

import numpy as np
import torch

from inference_engine import ops
from inference_engine.config import EngineConfig
from inference_engine.distributed.parallel_state import broadcast_from_rank0, get_tp_rank
from inference_engine.core.scheduler import SchedulerOutputs
from inference_engine.lora.context import set_lora_context
from inference_engine.lora.manager import LoRAManager
from inference_engine.lora.step_input import step_loras
from inference_engine.model_executor.forward_context import AttentionMetadata, set_attention_metadata
from inference_engine.model_executor.device_samples import DeviceSamples
from inference_engine.model_executor.layers.pooler import pool, pooling_chunk
from inference_engine.model_executor.layers.sampler import Sampler
from inference_engine.model_executor.model_loader import get_model
from inference_engine.model_executor.sampling_metadata import (PromptLogprobRows, SampleRow,
                                                                SamplingMetadata, device_tensor)
from inference_engine.sequence import SequenceStatus
from inference_engine.worker.blas_library import use_blas_for_step
from inference_engine.worker.cache_engine import CacheEngine
from inference_engine.worker.cuda_graph import CUDAGraphRunner
from inference_engine.worker.model_input import ModelInput
from inference_engine.worker.piecewise_cuda_graph import PiecewiseCUDAGraphRunner, can_borrow

logger = logging.getLogger(__name__)


class ModelRunner:
    def __init__(self, config: EngineConfig, device: torch.device, eos_token_id: int | None):
        self.config = config
        self.device = device
        self.block_size = config.cache_config.block_size
        self.kv_cache_dtype = config.cache_config.torch_dtype(config.model_config.torch_dtype)
        self.model = get_model(config.model_config, device)
        lora = config.lora_config  # slots in every linear layer, before memory is profiled
        self.lora_manager = (LoRAManager(self.model, lora.max_loras, lora.max_lora_rank,
                                         lora.max_cpu_loras) if lora is not None else None)
        self.sampler = Sampler(config.model_config.hf_config.vocab_size, eos_token_id)
        self.cache_engine: CacheEngine | None = None
        self.graph_runner: CUDAGraphRunner | None = None
        self.piecewise_runner: PiecewiseCUDAGraphRunner | None = None
        # The last step's sampled token ids on the device, and where each sequence's first one
        # is among them: the next step's inputs for tokens the host has not read yet.
        self.last_sampled: torch.Tensor | None = None
        self.last_sampled_index: dict[int, int] = {}

    def init_cache(self, num_blocks: int) -> None:
        self.cache_engine = CacheEngine(self.model, num_blocks, self.block_size,
                                        self.kv_cache_dtype, self.device)
        # Graphs need the compiled decode path: the torch fallbacks read lengths on the host.
        if (self.device.type == "cuda" and not self.config.enforce_eager
                and ops.paged_attention.backend("cuda") == "compiled"
                and ops.reshape_and_cache.backend("cuda") == "compiled"):
            self._capture_graphs()

    def _capture_graphs(self) -> None:
        """Decode graphs, and piecewise graphs for steps with prompts, in one memory pool (only
        one graph's step runs at a time)."""
        mc, sc = self.config.model_config, self.config.scheduler_config
        start, pool = time.perf_counter(), torch.cuda.graph_pool_handle()
        self.graph_runner = CUDAGraphRunner(
            self.model, sc.max_num_seqs, -(-mc.max_model_len // self.block_size),
            mc.hf_config.hidden_size, mc.torch_dtype, self.device)
        use_blas_for_step(carries_prompts=False)
        self.graph_runner.capture(pool)
        max_tokens = min(self.config.piecewise_graph_max_tokens, sc.max_num_batched_tokens)
        if max_tokens > 0 and not can_borrow(self.device):
            logger.warning("piecewise CUDA graphs off: this torch build cannot wrap device "
                           "memory without copying it; steps with prompts run eagerly")
            max_tokens = 0
        if max_tokens > 0:
            self.piecewise_runner = PiecewiseCUDAGraphRunner(
                self.model, max_tokens, mc.hf_config.hidden_size, mc.torch_dtype, self.device)
            use_blas_for_step(carries_prompts=True)
            self.piecewise_runner.capture(pool)
        logger.info("CUDA graphs: decode batches up to %d, steps with prompts up to %d tokens "
                    "(captured in %.1f s)", self.graph_runner.sizes[-1],
                    self.piecewise_runner.sizes[-1] if self.piecewise_runner else 0,
                    time.perf_counter() - start)

    def release_cuda_graphs(self) -> None:
        """Drops the captured graphs and their memory pool (before the process group is left)."""
        if self.graph_runner is not None:
            self.graph_runner = self.piecewise_runner = None
            gc.collect()
            torch.cuda.synchronize(self.device)

    @staticmethod
    def _tensor(values, dtype=torch.int64) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype)

    @staticmethod
    def _block_tables(tables: list[list[int]]) -> torch.Tensor:
        """[num_seqs, longest table] int32, zero-padded; one flat copy, not a list per row
        (several times faster for a full decode batch)."""
        lens = np.fromiter(map(len, tables), np.int64, len(tables))
        flat = np.fromiter(itertools.chain.from_iterable(tables), np.int32, int(lens.sum()))
        padded = np.zeros((len(tables), int(lens.max())), np.int32)
        padded[np.arange(padded.shape[1])[None, :] < lens[:, None]] = flat
        return torch.from_numpy(padded)

    def _slots(self, table: list[int], start: int, end: int) -> np.ndarray:
        """Cache slots of tokens start..end-1 of a sequence with this block table."""
        bs = self.block_size
        first, last = start // bs, (end - 1) // bs + 1
        slots = (np.asarray(table[first:last], dtype=np.int64)[:, None] * bs + np.arange(bs)).ravel()
        return slots[start - first * bs:end - first * bs]

    def prepare_input(self, sched: SchedulerOutputs) -> tuple[ModelInput, SamplingMetadata]:
        """The step's ModelInput (for every rank) and its SamplingMetadata (for the driver).

        The prefills' tokens come first (whole prompts less any cached prefix, or chunks of
        them), then one token per decoding sequence.
        """
        tokens, positions, slots, tables, seq_lens, starts = [], [], [], [], [], [0]
        meta = SamplingMetadata()
        for group in sched.prefill_seq_groups:
            first = group.is_first_prefill
            for seq in group.get_seqs(SequenceStatus.RUNNING):
                start, end = sched.prefill_chunks[seq.seq_id]
                offset = len(tokens)
                tokens += seq.token_ids[start:end]
                positions.append(np.arange(start, end))
                slots.append(self._slots(seq.block_table, start, end))
                tables.append(seq.block_table)
                seq_lens.append(end)
                starts.append(starts[-1] + end - start)
                if first and group.wants_prompt_logprobs:  # (whole: never cached nor chunked)
                    meta.prompt_rows.append(PromptLogprobRows(group, offset))
                chunk = (pooling_chunk(group, seq, start, end, offset)
                         if group.pooling_params is not None else None)
                if chunk is not None:
                    meta.pooling_chunks.append(chunk)
                if end < len(seq):
                    continue  # a chunk of its prefill: it samples after the last
                meta.rows.append(SampleRow(group, seq, group.sampling_params.best_of if first else 1))
                meta.sample_indices.append(offset + end - start - 1)
        decode_rows = sched.decode_rows()
        for group, seq, drafts in decode_rows:
            if not drafts:
                break  # (those with drafts come first)
            # Its last token and drafts, over its cache as a prompt's chunk would be: every
            # position samples, and the engine keeps the drafts that hold and one token more.
            start, end, offset = len(seq) - 1, len(seq) + len(drafts), len(tokens)
            tokens += [seq.last_token_id] + drafts
            positions.append(np.arange(start, end))
            slots.append(self._slots(seq.block_table, start, end))
            tables.append(seq.block_table)
            seq_lens.append(end)
            starts.append(starts[-1] + end - start)
            for j, draft in enumerate(drafts + [-1]):
                meta.rows.append(SampleRow(group, seq, draft=draft))
                meta.sample_indices.append(offset + j)
        num_prefills, num_prefill_tokens = len(seq_lens), len(tokens)
        bs = self.block_size
        decode_positions, decode_slots, from_samples = [], [], []
        for group, seq, drafts in decode_rows:
            if drafts:
                continue  # laid out above
            pos = len(seq) + seq.num_pending - 1
            meta.rows.append(SampleRow(group, seq))
            meta.sample_indices.append(len(tokens))
            if seq.num_pending:  # the input is the token the step in flight samples
                from_samples.append((len(tokens), self.last_sampled_index[seq.seq_id]))
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
            torch.from_numpy(np.concatenate(slots)), self._block_tables(tables),
            self._tensor(seq_lens, torch.int32), num_prefills, num_prefill_tokens,
            self._tensor(starts, torch.int32) if num_prefills else None, max(seq_lens),
            int(query_lens.max()) if num_prefills else 1)
        model_input = ModelInput(self._tensor(tokens), torch.from_numpy(np.concatenate(positions)),
                                 attn, self._logits_rows(meta), sched.blocks_to_copy,
                                 self._tensor(from_samples) if from_samples else None,
                                 bool(meta.pooling_chunks),
                                 *(step_loras(sched) if self.lora_manager else (None, None)))
        return model_input, meta

    def _logits_rows(self, meta: SamplingMetadata) -> torch.Tensor:
        """The hidden-state rows whose logits the sampler reads; renumbers meta's rows to their
        place among those logits."""
        if not meta.prompt_rows:  # the sampled rows alone, already in increasing order
            rows = meta.sample_indices
            meta.sample_indices = list(range(len(rows)))
            return self._tensor(rows)
        rows = sorted(set(meta.sample_indices)
                      | {pr.start + j for pr in meta.prompt_rows
                         for j in range(len(pr.group.prompt_token_ids))})
        where = {row: i for i, row in enumerate(rows)}
        meta.sample_indices = [where[i] for i in meta.sample_indices]
        for pr in meta.prompt_rows:
            pr.start = where[pr.start]
        return self._tensor(rows)

    @torch.inference_mode()
    def execute_model(self, model_input: ModelInput):
        """Runs the model; the logits of `logits_rows` on rank 0 (with `return_hidden`, the pair
        of them and the step's hidden states, for the embeddings), None on the other ranks."""
        self.cache_engine.copy_blocks(model_input.blocks_to_copy)
        inp = model_input.to(self.device)
        if inp.inputs_from_samples is not None:
            rows, index = inp.inputs_from_samples.unbind(1)
            inp.input_ids.index_copy_(0, rows, self._sampled_inputs(index))
        # Graphs were captured without adapters: a step with some runs eagerly.
        lora = (self.lora_manager.context(inp.lora_requests, inp.lora_ids)
                if inp.lora_requests else None)
        graphs, pieces = (self.graph_runner, self.piecewise_runner) if lora is None else (None, None)
        n = len(inp.input_ids)
        use_blas_for_step(carries_prompts=not inp.attn.is_decode_only)
        if inp.attn.is_decode_only and graphs is not None and graphs.can_run(n):
            hidden = graphs.run(inp.input_ids, inp.positions, inp.attn)
        elif pieces is not None and pieces.can_run(n):
            hidden = pieces.run(inp.input_ids, inp.positions, inp.attn)
        else:
            with set_attention_metadata(inp.attn), set_lora_context(lora):
                hidden = self.model(inp.input_ids, inp.positions)
        logits = self.model.compute_logits(hidden[inp.logits_rows])
        # Only the driver's result is used; another rank's would travel back for nothing.
        return (logits, hidden) if inp.return_hidden and get_tp_rank() == 0 else logits

    def _sampled_inputs(self, index: torch.Tensor) -> torch.Tensor:
        """The last step's sampled tokens at `index`, on every rank: only the driver sampled
        them, so with tensor parallelism it broadcasts them (on the device, no host read)."""
        if get_tp_rank() == 0:
            tokens = self.last_sampled.index_select(0, index).to(torch.int64)
        else:
            tokens = torch.empty(index.shape, dtype=torch.int64, device=self.device)
        return broadcast_from_rank0(tokens)

    @torch.inference_mode()
    def sample(self, logits: torch.Tensor, meta: SamplingMetadata,
               hidden: torch.Tensor | None = None) -> DeviceSamples:
        """Queues the sampling; with async scheduling, keeps the tokens for the next step.
        `hidden` (the step's hidden states) gives embedding requests theirs, pooled."""
        if any(row.group.sampling_params.needs_penalties and row.seq.num_pending
               for row in meta.rows):
            meta.pending_tokens = self._pending_tokens(meta)
        pooled = pool(hidden, meta.pooling_chunks) if hidden is not None else None
        samples = self.sampler.sample_on_device(logits, meta, pooled)
        if self.config.async_scheduling:
            self.last_sampled, self.last_sampled_index, index = samples.token_ids, {}, 0
            for row in meta.rows:
                self.last_sampled_index[row.seq.seq_id] = index
                index += row.num_samples
        return samples

    def _pending_tokens(self, meta: SamplingMetadata) -> torch.Tensor:
        """[R] each row's token in flight, from the last step's samples on the device (-1 for
        rows without one)."""
        index = [self.last_sampled_index[row.seq.seq_id] if row.seq.num_pending else -1
                 for row in meta.rows]
        index = device_tensor(index, torch.int64, self.device)
        tokens = self.last_sampled.index_select(0, index.clamp(min=0)).to(torch.int64)
        return torch.where(index >= 0, tokens, -1)

    @torch.inference_mode()
    def profile_run(self, num_tokens: int, max_seq_len: int) -> None:
        """Runs the largest prefill the scheduler may form, over a scratch cache shared by all
        layers, so the peak activation memory can be measured before the cache is sized."""
        seq_len = min(max_seq_len, num_tokens)
        num_seqs = max(1, num_tokens // seq_len)
        blocks = -(-seq_len // self.block_size)
        scratch = CacheEngine(self.model, blocks * num_seqs, self.block_size,
                              self.kv_cache_dtype, self.device)
        tables = [list(range(i * blocks, (i + 1) * blocks)) for i in range(num_seqs)]
        starts = [i * seq_len for i in range(num_seqs + 1)]
        slots = np.concatenate([self._slots(t, 0, seq_len) for t in tables])
        attn = AttentionMetadata(torch.from_numpy(slots), self._block_tables(tables),
                                 self._tensor([seq_len] * num_seqs, torch.int32), num_seqs,
                                 num_seqs * seq_len, self._tensor(starts, torch.int32), seq_len,
                                 seq_len)
        inp = ModelInput(torch.zeros(num_seqs * seq_len, dtype=torch.int64),
                         torch.arange(seq_len).repeat(num_seqs), attn,
                         self._tensor(starts[1:]) - 1, []).to(self.device)
        with set_attention_metadata(inp.attn):
            hidden = self.model(inp.input_ids, inp.positions)
        self.model.compute_logits(hidden[inp.logits_rows])
        del scratch
