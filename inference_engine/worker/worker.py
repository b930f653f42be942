"""A worker owns one device: the model runner on it and its share of the KV cache.

Every tensor-parallel rank has one; the driver's (rank 0) also samples, in the same call.
"""
import gc
import logging

import torch

from inference_engine.config import EngineConfig, resolve_device
from inference_engine.distributed.parallel_state import destroy_distributed, init_distributed
from inference_engine.sample.device_samples import DeviceSamples
from inference_engine.sample.metadata import SamplingMetadata
from inference_engine.worker.blas_library import prefer_blas_library
from inference_engine.worker.cache_engine import block_bytes
from inference_engine.worker.model_input import ModelInput
from inference_engine.worker.model_runner import ModelRunner

logger = logging.getLogger(__name__)


class Worker:
    """`rank` of `tensor_parallel_size` ranks; with more than one it first joins the group at
    `distributed_init_method`, since the parallel layers size their shards from the group."""

    def __init__(self, config: EngineConfig, eos_token_id: int | None, local_rank: int = 0,
                 rank: int = 0, distributed_init_method: str | None = None):
        self.config = config
        self.rank = rank
        self.device = resolve_device(config.model_config.device)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
            prefer_blas_library()
        world_size = config.parallel_config.tensor_parallel_size
        if world_size > 1:
            init_distributed(world_size, rank, distributed_init_method, self.device)
        torch.manual_seed(config.model_config.seed)
        self.model_runner = ModelRunner(config, self.device, eos_token_id)

    def determine_num_blocks(self) -> int:
        """KV-cache blocks that fit: a fixed budget on CPU; on GPU what is left of
        gpu_memory_utilization after the weights and the peak activations of a profiled step."""
        cache = self.config.cache_config
        if cache.num_blocks_override is not None:
            return cache.num_blocks_override
        per_block = block_bytes(self.model_runner.model, cache.block_size,
                                self.model_runner.kv_cache_dtype)
        if self.device.type != "cuda":
            return int(cache.cpu_kv_cache_space_gib * 2**30 // per_block)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        sched = self.config.scheduler_config
        self.model_runner.profile_run(sched.max_num_batched_tokens, sched.max_model_len)
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        # Memory held outside torch's allocator (the CUDA context, NCCL buffers) counts too.
        outside_torch = total - free - torch.cuda.memory_reserved()
        available = total * cache.gpu_memory_utilization - torch.cuda.max_memory_allocated() - outside_torch
        torch.cuda.empty_cache()
        logger.info("KV cache: %.2f GiB available after a peak of %.2f GiB",
                    available / 2**30, torch.cuda.max_memory_allocated() / 2**30)
        return max(0, int(available // per_block))

    def init_cache(self, num_blocks: int) -> None:
        self.model_runner.init_cache(num_blocks)

    def execute_step(self, model_input: ModelInput,
                     meta: SamplingMetadata | None = None) -> DeviceSamples | None:
        """One step: the model on every rank; on the driver, given `meta`, the sampling."""
        return self.model_runner.execute_step(model_input, meta)

    def release_kv_memory(self) -> None:
        """The KV cache's memory back to the system while no block is in use (host caches)."""
        self.model_runner.cache_engine.release_memory()

    def add_lora(self, request) -> None:
        """Reads and checks a LoRA adapter (lora.LoRARequest) on this rank."""
        self.model_runner.lora_manager.add(request)

    def remove_lora(self, lora_id: int) -> None:
        self.model_runner.lora_manager.remove(lora_id)

    def release_cuda_graphs(self) -> None:
        self.model_runner.release_cuda_graphs()

    def shutdown(self) -> None:
        if self.model_runner is None:
            return
        # Graphs that captured NCCL all-reduces make leaving the process group hang
        # (pytorch/pytorch#115388): they go first.
        self.release_cuda_graphs()
        destroy_distributed()
        # The weights and the KV cache go with the runner: another engine in this process (a
        # test's next LLM) sizes its cache from the memory left free.
        self.model_runner = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
