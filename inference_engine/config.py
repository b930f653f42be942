"""Engine configuration: small dataclasses checked on construction."""
import logging
import os
import sys
from dataclasses import dataclass, field

import torch

from inference_engine.pooling_params import PoolingType
from inference_engine.spec_decode.config import SpeculativeConfig
from inference_engine.transformers_utils.generation_config import default_sampling_values

logger = logging.getLogger(__name__)

# The weight quantizations model_executor/layers/quantization implements (vLLM's --quantization).
# model_executor/layers/quantization/; gptq_marlin and awq_marlin are vLLM's names for running
# GPTQ and AWQ checkpoints on its Marlin kernels, accepted for those checkpoints here too.
QUANTIZATION_METHODS = ("awq", "awq_marlin", "compressed-tensors", "fp8", "gptq", "gptq_marlin",
                        "squeezellm")
MODEL_IMPLS = ("auto", "native", "transformers")  # model_executor/models/__init__.py
_DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class ModelConfig:
    """The model: where it comes from, its Hugging Face config, dtype and context length, and
    how its embeddings pool (`pooling_type`; None: as the checkpoint's sentence-transformers
    config says, else LAST)."""
    model: str
    tokenizer: str | None = None
    dtype: str = "auto"
    load_format: str = "auto"
    max_model_len: int | None = None
    seed: int = 0
    served_model_name: str | None = None
    served_model_aliases: list[str] = field(default_factory=list)  # more names it answers to
    skip_tokenizer_init: bool = False
    trust_remote_code: bool = False  # configs and tokenizers may run the checkpoint's own code
    device: str = "auto"
    pooling_type: PoolingType | str | None = None  # a name is resolved on construction
    # Default sampling values: "auto" (the checkpoint's generation_config.json), "vllm" (none)
    # or a folder; the overrides (a dict or its JSON) win (transformers_utils/generation_config).
    generation_config: str = "auto"
    override_generation_config: dict | str | None = None
    # "fp8": linear layers' weights in FP8, quantized on load; None: as the checkpoint's
    # quantization_config says (gptq, awq, compressed-tensors, squeezellm), else none.
    quantization: str | None = None
    # "native" (our model classes), "transformers" (transformers' own model on the paged cache)
    # or "auto" (native where we have the architecture).
    model_impl: str = "auto"
    hf_config: object = field(default=None, repr=False)
    torch_dtype: torch.dtype = field(default=torch.float32, init=False)
    sampling_defaults: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        from inference_engine.transformers_utils.config import get_hf_config
        from inference_engine.transformers_utils.load_format import resolve_load_format
        if self.hf_config is None:
            self.hf_config = get_hf_config(self.model, self.trust_remote_code)
        self.load_format = resolve_load_format(self.model, self.load_format)
        # Which of them fits the checkpoint is resolved with the model classes at hand
        # (EngineArgs.create_engine_config, and again when the model is built).
        for name, value, allowed in (("quantization", self.quantization, QUANTIZATION_METHODS),
                                     ("model_impl", self.model_impl, MODEL_IMPLS)):
            if value is not None and value not in allowed:
                raise ValueError(f"{name} {value!r} is not supported (supported: "
                                 f"{', '.join(allowed)})")
        self.torch_dtype = self._resolve_dtype()
        self.max_model_len = self._resolve_max_model_len()
        if self.served_model_name is None:
            self.served_model_name = self.model
        self.pooling_type = self._resolve_pooling_type()
        self.sampling_defaults = default_sampling_values(self.model, self.generation_config,
                                                         self.override_generation_config)

    def _resolve_pooling_type(self) -> PoolingType:
        from inference_engine.transformers_utils.sentence_transformers import (
            sentence_transformers_pooling)
        if self.pooling_type is not None:
            return PoolingType.parse(self.pooling_type)
        found = sentence_transformers_pooling(self.model) if os.path.isdir(self.model) else None
        if found is None:
            return PoolingType.LAST
        logger.info("embeddings: %s pooling, as the checkpoint's sentence-transformers config "
                    "says", found.value)
        return found

    def _resolve_dtype(self) -> torch.dtype:
        if self.dtype != "auto":
            if self.dtype not in _DTYPES:
                raise ValueError(f"dtype must be one of auto, {', '.join(_DTYPES)}; got {self.dtype!r}")
            return _DTYPES[self.dtype]
        if resolve_device(self.device).type == "cpu":
            return torch.float32  # half precision matmuls are slow on most CPUs
        config_dtype = getattr(self.hf_config, "dtype", None) or getattr(self.hf_config, "torch_dtype", None)
        if isinstance(config_dtype, str):
            config_dtype = _DTYPES.get(config_dtype)
        return config_dtype if config_dtype in (torch.float16, torch.bfloat16) else torch.bfloat16

    def _resolve_max_model_len(self) -> int:
        limit = getattr(self.hf_config, "max_position_embeddings", None) or 2048
        window = getattr(self.hf_config, "sliding_window", None)
        if window:  # Mistral: only full attention is implemented, so stay inside the window.
            limit = min(limit, window)
        if self.max_model_len is None:
            return limit
        if not 0 < self.max_model_len <= limit:
            raise ValueError(f"max_model_len must be in [1, {limit}] for this model, "
                             f"got {self.max_model_len}")
        return self.max_model_len

    def get_num_kv_heads(self, tp_size: int = 1) -> int:
        kv = getattr(self.hf_config, "num_key_value_heads", None) or self.hf_config.num_attention_heads
        return max(1, kv // tp_size)

    def get_head_size(self) -> int:
        cfg = self.hf_config
        return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


@dataclass
class CacheConfig:
    """The paged KV cache: block size, how much memory it may take, and what it stores: the
    model's dtype ("auto") or FP8 ("fp8", "fp8_e4m3": float8_e4m3fn, no scale, half the bytes;
    see ops/attention.py)."""
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    cpu_kv_cache_space_gib: float = 4.0
    num_blocks_override: int | None = None
    watermark: float = 0.01
    cache_dtype: str = "auto"
    enable_prefix_caching: bool = False  # prompts that start alike share full blocks
    num_blocks: int = field(default=0, init=False)  # set after profiling

    def torch_dtype(self, model_dtype: torch.dtype) -> torch.dtype:
        return model_dtype if self.cache_dtype == "auto" else torch.float8_e4m3fn

    def __post_init__(self) -> None:
        if self.cache_dtype not in ("auto", "fp8", "fp8_e4m3"):
            raise ValueError(f"kv_cache_dtype must be auto, fp8 or fp8_e4m3, got {self.cache_dtype!r}")
        if self.cache_dtype != "auto" and torch.version.hip is not None:
            raise ValueError("an FP8 KV cache is not supported on ROCm yet (its FP8 types differ "
                             "by chip); use kv_cache_dtype=auto")
        if self.block_size not in (1, 2, 4, 8, 16, 32, 64, 128):
            raise ValueError(f"block_size must be a power of two up to 128, got {self.block_size}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError("gpu_memory_utilization must be in (0, 1], "
                             f"got {self.gpu_memory_utilization}")
        if self.cpu_kv_cache_space_gib <= 0:
            raise ValueError(f"cpu_kv_cache_space_gib must be positive, got {self.cpu_kv_cache_space_gib}")


SCHEDULING_POLICIES = ("fcfs", "priority", "lof")  # see core/scheduling_policy.py


@dataclass
class SchedulerConfig:
    """Continuous batching limits per step, and the order requests are admitted in."""
    max_num_seqs: int = 192  # see EngineArgs.max_num_seqs
    max_num_batched_tokens: int | None = None
    max_model_len: int = 2048
    # Long prompts computed over several steps, in chunks that fill each step's token budget
    # beside its decodes; the budget may then be below max_model_len.
    enable_chunked_prefill: bool = False
    policy: str = "fcfs"

    def __post_init__(self) -> None:
        if self.policy not in SCHEDULING_POLICIES:
            raise ValueError(f"scheduling policy must be one of {', '.join(SCHEDULING_POLICIES)}, "
                             f"got {self.policy!r}")
        if self.max_num_batched_tokens is None:
            self.max_num_batched_tokens = (8192 if self.enable_chunked_prefill
                                           else max(self.max_model_len, 8192))
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be at least 1, got {self.max_num_seqs}")
        if self.enable_chunked_prefill:
            if self.max_num_batched_tokens < self.max_num_seqs:
                raise ValueError(
                    f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= "
                    f"max_num_seqs ({self.max_num_seqs}): a step decodes every running sequence")
        elif self.max_num_batched_tokens < self.max_model_len:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_model_len "
                f"({self.max_model_len}), or the longest prompts could never be scheduled "
                "(or enable chunked prefill)")


@dataclass
class ParallelConfig:
    """How many ranks shard the model, and what starts them: `mp` (spawned processes on this
    node) or `ray` (actors on a Ray cluster). Left unset, the backend is `ray` when a Ray cluster
    is given (RAY_ADDRESS, or ray.init() already called in this process), else `mp`."""
    tensor_parallel_size: int = 1
    distributed_executor_backend: str | None = None

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.distributed_executor_backend not in (None, "mp", "ray"):
            raise ValueError("distributed_executor_backend must be 'mp' or 'ray', "
                             f"got {self.distributed_executor_backend!r}")
        if self.distributed_executor_backend is None and self.tensor_parallel_size > 1:
            self.distributed_executor_backend = "ray" if _ray_cluster_given() else "mp"

    def verify_with_model_config(self, model_config: ModelConfig) -> None:
        """Raises ValueError when the model's heads or MLP do not split over the ranks."""
        tp = self.tensor_parallel_size
        cfg = model_config.hf_config
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        # Bloom's config leaves its MLP width implicit: four times the hidden size.
        intermediate = getattr(cfg, "intermediate_size", None) or 4 * cfg.hidden_size

        def fits(n: int) -> bool:  # KV heads may be replicated when there are fewer than ranks
            return heads % n == 0 and (kv_heads % n == 0 or n % kv_heads == 0) and intermediate % n == 0

        if not fits(tp):
            sizes = ", ".join(str(n) for n in range(1, heads + 1) if fits(n))
            raise ValueError(
                f"tensor_parallel_size={tp} does not split this model: it has {heads} query heads, "
                f"{kv_heads} KV heads and an MLP of {intermediate}; the query heads and the MLP "
                f"must divide by it, and the KV heads divide by it or it by them. "
                f"Sizes that work: {sizes}")


def _ray_cluster_given() -> bool:
    if os.environ.get("RAY_ADDRESS"):
        return True
    ray = sys.modules.get("ray")  # never import Ray just to ask
    return ray is not None and ray.is_initialized()


@dataclass
class LoRAConfig:
    """Serving LoRA adapters: up to `max_loras` of them in one step (each takes a slot of
    device memory in every linear layer, sized for `max_lora_rank`), and up to `max_cpu_loras`
    (None: max_loras) kept read on the host."""
    max_loras: int = 1
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_loras", "max_lora_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_cpu_loras is None:
            self.max_cpu_loras = self.max_loras
        if self.max_cpu_loras < self.max_loras:
            raise ValueError(f"max_cpu_loras ({self.max_cpu_loras}) must be at least max_loras "
                             f"({self.max_loras})")


@dataclass
class EngineConfig:
    """Everything the engine needs. `async_scheduling` (None: on for CUDA with one rank)
    launches each step before the previous one's tokens are read, so the GPU never waits for
    the host's scheduling and output processing. Steps of up to `piecewise_graph_max_tokens`
    tokens that carry prompts replay CUDA graphs captured in pieces between the attention calls
    (None: 1024 on CUDA with one rank, 0 elsewhere; 0 turns them off)."""
    model_config: ModelConfig
    cache_config: CacheConfig
    scheduler_config: SchedulerConfig
    parallel_config: ParallelConfig
    enforce_eager: bool = False
    disable_log_stats: bool = False
    async_scheduling: bool | None = None
    piecewise_graph_max_tokens: int | None = None
    lora_config: LoRAConfig | None = None  # None: no adapters
    speculative_config: SpeculativeConfig | None = None  # None: no drafts

    def __post_init__(self) -> None:
        one_cuda_rank = (resolve_device(self.model_config.device).type == "cuda"
                         and self.parallel_config.tensor_parallel_size == 1)
        if self.piecewise_graph_max_tokens is None:
            # Tried on GPUs with one rank; with tensor parallelism it is asked for explicitly.
            self.piecewise_graph_max_tokens = 1024 if one_cuda_rank else 0
        if self.piecewise_graph_max_tokens < 0:
            raise ValueError("piecewise_graph_max_tokens must be >= 0 (0 turns the graphs off)")
        if self.speculative_config is not None:
            # A step's drafts come from the tokens of the step before: they must be read first.
            if self.async_scheduling:
                raise ValueError("speculative decoding and async scheduling do not go together "
                                 "(drafts need the previous step's tokens on the host)")
            self.async_scheduling = False
        if self.async_scheduling is None:
            # With tensor parallelism it works (the driver broadcasts the sampled tokens) but
            # has not been measured on GPUs yet, so it is asked for explicitly there.
            self.async_scheduling = one_cuda_rank
