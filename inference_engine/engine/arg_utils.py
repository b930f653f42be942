"""EngineArgs: every engine setting in one flat dataclass, shared by the CLI, LLM and the server."""
import argparse
import dataclasses
from dataclasses import dataclass

from inference_engine.config import (MODEL_IMPLS, QUANTIZATION_METHODS, SCHEDULING_POLICIES,
                                     CacheConfig, EngineConfig, LoRAConfig, ModelConfig,
                                     ParallelConfig, SchedulerConfig)
from inference_engine.pooling_params import PoolingType
from inference_engine.spec_decode.config import SpeculativeConfig

# The CLI refuses other values up front.
CHOICES = {"model_impl": MODEL_IMPLS, "scheduling_policy": SCHEDULING_POLICIES,
           "quantization": QUANTIZATION_METHODS, "pooling_type": tuple(t.value for t in PoolingType)}


def _speculative_config(text: str) -> str:
    """Checked when the flags are parsed: a bad config is a usage error, not a failed start."""
    try:
        SpeculativeConfig.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


PARSERS = {"speculative_config": _speculative_config}


@dataclass
class EngineArgs:
    """Engine settings; `model=None` serves the embedded SmolLM2-135M-Instruct."""
    model: str | None = None
    tokenizer: str | None = None
    # A hub id (`org/name`) is downloaded through huggingface_hub (transformers_utils/hub.py):
    # at this branch, tag or commit, into this folder (None: the hub's cache), with this token
    # (None: HF_TOKEN or the stored login).
    revision: str | None = None
    tokenizer_revision: str | None = None
    download_dir: str | None = None
    hf_token: str | None = None
    gguf_file: str | None = None  # one GGUF file of the hub repository `model` (or org/name:QUANT)
    # Configs and tokenizers whose classes are code in the checkpoint run it only with this.
    trust_remote_code: bool = False
    # native, transformers (transformers' own model on the paged cache), or auto: native
    # where the architecture has a class here (model_executor/models/), else transformers.
    model_impl: str = "auto"
    served_model_name: str | list[str] | None = None  # several: all accepted, the first named
    dtype: str = "auto"
    load_format: str = "auto"
    seed: int = 0
    max_model_len: int | None = None
    device: str = "auto"
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    cpu_kv_cache_space_gib: float = 4.0
    num_gpu_blocks_override: int | None = None
    kv_cache_dtype: str = "auto"  # or fp8 (e4m3): half the cache's bytes, see CacheConfig
    quantization: str | None = None  # fp8: linear weights in FP8, quantized on load
    enable_prefix_caching: bool = False  # reuse the cached blocks of prompts' common prefixes
    # 192 rather than 256: shorter busy steps let the longest request, which sets a run's length,
    # through sooner (docs/performance.md, "Defaults and the figures behind them").
    max_num_seqs: int = 192
    max_num_batched_tokens: int | None = None
    enable_chunked_prefill: bool = False  # long prompts over several steps, beside decodes
    scheduling_policy: str = "fcfs"  # or priority (requests' own), lof (longest max_tokens first)
    tensor_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    enforce_eager: bool = False
    skip_tokenizer_init: bool = False
    disable_log_stats: bool = False
    async_scheduling: bool | None = None  # None: on for CUDA with tensor_parallel_size=1
    piecewise_graph_max_tokens: int | None = None  # None: 1024 on CUDA with one rank; 0: off
    # Embeddings: LAST, MEAN or CLS; None: the checkpoint's sentence-transformers Pooling
    # module, else LAST.
    pooling_type: str | None = None
    # Default sampling values from the checkpoint's generation_config.json ("auto"), none
    # ("vllm") or another folder's; the overrides (JSON: {"temperature": 0.7}) win.
    generation_config: str = "auto"
    override_generation_config: str | None = None
    # LoRA adapters (lora/): requests name one; max_loras of them share a step.
    enable_lora: bool = False
    max_loras: int = 1
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None
    # Speculative decoding (spec_decode/), vLLM's JSON: {"method": "ngram",
    # "num_speculative_tokens": 3, "prompt_lookup_max": 4, "prompt_lookup_min": 1}; a dict too.
    speculative_config: str | dict | None = None

    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        for f in dataclasses.fields(EngineArgs):
            flag = "--" + f.name.replace("_", "-")
            if f.type is bool or f.type == "bool":
                parser.add_argument(flag, action="store_true", help=f"(default: {f.default})")
                continue
            if f.type == bool | None:  # --x / --no-x, unset: the engine decides
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                    help="(default: decided by the engine)")
                continue
            kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
            kind = PARSERS.get(f.name, kind)
            parser.add_argument(flag, type=kind, default=f.default, choices=CHOICES.get(f.name),
                                nargs="+" if "list" in str(f.type) else None,
                                help=f"(default: {f.default})")
        return parser

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> "EngineArgs":
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def create_engine_config(self) -> EngineConfig:
        from inference_engine.model_executor.layers.quantization import resolve_quantization
        from inference_engine.model_executor.models import resolve_model_impl
        from inference_engine.transformers_utils.embedded import embedded_model_path
        from inference_engine.transformers_utils.hub import local_model
        hub = dict(download_dir=self.download_dir, token=self.hf_token,
                   code=self.trust_remote_code)
        model = local_model(self.model or embedded_model_path(), revision=self.revision,
                            gguf_file=self.gguf_file, **hub)
        tokenizer = self.tokenizer and local_model(
            self.tokenizer, revision=self.tokenizer_revision or self.revision, weights=False,
            **hub)
        names = ([self.served_model_name] if isinstance(self.served_model_name, str)
                 else list(self.served_model_name or []))
        model_config = ModelConfig(
            model=model, tokenizer=tokenizer, dtype=self.dtype, load_format=self.load_format,
            max_model_len=self.max_model_len, seed=self.seed,
            served_model_name=names[0] if names else self.model or "SmolLM2-135M-Instruct",
            served_model_aliases=names[1:],
            skip_tokenizer_init=self.skip_tokenizer_init,
            trust_remote_code=self.trust_remote_code, device=self.device,
            pooling_type=self.pooling_type, generation_config=self.generation_config,
            override_generation_config=self.override_generation_config,
            quantization=self.quantization, model_impl=self.model_impl)
        # Checked here, before any worker starts: what runs the architecture, and which
        # quantization method the checkpoint and the flags ask for.
        hf_config = model_config.hf_config
        model_config.model_impl = resolve_model_impl(hf_config, model_config.model_impl)
        model_config.quantization = resolve_quantization(hf_config, model_config.quantization)
        if model_config.model_impl == "transformers":
            self._check_transformers_impl(model_config)
        return EngineConfig(
            model_config=model_config,
            cache_config=CacheConfig(self.block_size, self.gpu_memory_utilization,
                                     self.cpu_kv_cache_space_gib, self.num_gpu_blocks_override,
                                     cache_dtype=self.kv_cache_dtype,
                                     enable_prefix_caching=self.enable_prefix_caching),
            scheduler_config=SchedulerConfig(self.max_num_seqs, self.max_num_batched_tokens,
                                             model_config.max_model_len,
                                             self.enable_chunked_prefill,
                                             self.scheduling_policy),
            parallel_config=ParallelConfig(self.tensor_parallel_size,
                                           self.distributed_executor_backend),
            enforce_eager=self.enforce_eager, disable_log_stats=self.disable_log_stats,
            async_scheduling=self.async_scheduling,
            piecewise_graph_max_tokens=self.piecewise_graph_max_tokens,
            lora_config=(LoRAConfig(self.max_loras, self.max_lora_rank, self.max_cpu_loras)
                         if self.enable_lora else None),
            speculative_config=SpeculativeConfig.parse(self.speculative_config))

    def _check_transformers_impl(self, model_config: ModelConfig) -> None:
        """transformers' own linear layers (torch.nn.Linear) neither shard over ranks nor take
        adapters or quantized weights."""
        for what, on in (("tensor_parallel_size > 1", self.tensor_parallel_size > 1),
                         ("LoRA", self.enable_lora),
                         (f"quantization ({model_config.quantization})", model_config.quantization)):
            if on:
                raise ValueError(f"{what} is not supported with the transformers implementation "
                                 f"(--model-impl), which runs "
                                 f"{model_config.hf_config.architectures}")
