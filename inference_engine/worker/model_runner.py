"""Runs the model on a step's input and, on the driver, samples: one call per step (the
engine builds the input: engine/step_input.py). Every rank runs the model on the same
ModelInput; the driver (rank 0) also samples, with the step's SamplingMetadata.
"""
import gc
import logging
import time

import numpy as np
import torch

from inference_engine import ops
from inference_engine.config import EngineConfig
from inference_engine.distributed.parallel_state import broadcast_from_rank0, get_tp_rank
from inference_engine.lora.context import set_lora_context
from inference_engine.lora.manager import LoRAManager
from inference_engine.model_executor.forward_context import (AttentionMetadata,
                                                             set_attention_metadata)
from inference_engine.model_executor.layers.pooler import pool
from inference_engine.model_executor.model_loader import get_model
from inference_engine.sample.device_samples import DeviceSamples
from inference_engine.sample.metadata import SamplingMetadata, device_tensor
from inference_engine.sample.sampler import Sampler
from inference_engine.worker.blas_library import use_blas_for_step
from inference_engine.worker.cache_engine import CacheEngine
from inference_engine.worker.cuda_graph import CUDAGraphRunner
from inference_engine.worker.model_input import ModelInput, block_tables_tensor, cache_slots
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
        # The last step's sampled token ids on the device (async scheduling): the next step's
        # inputs for tokens the host has not read yet (the input says which: step_input.py).
        self.last_sampled: torch.Tensor | None = None

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

    def execute_step(self, model_input: ModelInput,
                     meta: SamplingMetadata | None = None) -> DeviceSamples | None:
        """Runs the model, then on the driver (given `meta`) samples: the step's samples, still
        on the device; None on the other ranks."""
        logits = self.execute_model(model_input)
        if meta is None:
            return None
        hidden = None
        if model_input.return_hidden:
            logits, hidden = logits
        return self.sample(logits, meta, hidden)

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
        if meta.pending_index is not None:
            meta.pending_tokens = self._pending_tokens(meta.pending_index)
        pooled = pool(hidden, meta.pooling_chunks) if hidden is not None else None
        samples = self.sampler.sample_on_device(logits, meta, pooled)
        if self.config.async_scheduling:
            self.last_sampled = samples.token_ids
        return samples

    def _pending_tokens(self, pending_index: list[int]) -> torch.Tensor:
        """[R] each row's token in flight, from the last step's samples on the device (-1 for
        rows without one)."""
        index = device_tensor(pending_index, torch.int64, self.device)
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
        slots = np.concatenate([cache_slots(t, 0, seq_len, self.block_size) for t in tables])
        attn = AttentionMetadata(torch.from_numpy(slots), block_tables_tensor(tables),
                                 torch.full((num_seqs,), seq_len, dtype=torch.int32), num_seqs,
                                 num_seqs * seq_len, torch.tensor(starts, dtype=torch.int32),
                                 seq_len, seq_len)
        inp = ModelInput(torch.zeros(num_seqs * seq_len, dtype=torch.int64),
                         torch.arange(seq_len).repeat(num_seqs), attn,
                         torch.tensor(starts[1:]) - 1, []).to(self.device)
        with set_attention_metadata(inp.attn):
            hidden = self.model(inp.input_ids, inp.positions)
        self.model.compute_logits(hidden[inp.logits_rows])
        del scratch
