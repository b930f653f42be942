"""Every INFERENCE_ENGINE_* environment variable, what it does and its default. Each is read at
the moment it is used (a test or a benchmark may set one for a run); the switches among them
exist to measure a default against what it replaced (docs/performance.md has the figures)."""
import os
from pathlib import Path

# Where derived files go (converted GGUF tokenizers, test checkpoints): ~/.cache/inference_engine.
CACHE = "INFERENCE_ENGINE_CACHE"
# The default of `serve --api-key`.
API_KEY = "INFERENCE_ENGINE_API_KEY"
# "1"/"true": the default of `serve --allow-runtime-lora-updating`.
ALLOW_RUNTIME_LORA_UPDATING = "INFERENCE_ENGINE_ALLOW_RUNTIME_LORA_UPDATING"
# The CUDA BLAS library of torch's matmuls: "cublaslt" (default), "cublas" (torch's own
# default), or "per-phase" (cuBLAS for steps that carry prompts, cuBLASLt for decode-only ones).
BLAS = "INFERENCE_ENGINE_BLAS"
# "simt": GPU decode attention on the CUDA cores, where the tensor-core kernel would run.
PAGED_ATTENTION_KERNEL = "INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL"
# "0": cuBLAS for matmuls of 1-8 rows too, instead of the few-row kernel.
SKINNY_MATMUL = "INFERENCE_ENGINE_SKINNY_MATMUL"
# "1": every Triton kernel call through Triton's JIT, instead of the cached compiled launch.
TRITON_JIT_LAUNCH = "INFERENCE_ENGINE_TRITON_JIT_LAUNCH"
# "0": greedy steps through the general sampler, instead of the one-pass greedy op.
FUSED_GREEDY = "INFERENCE_ENGINE_FUSED_GREEDY"
# "0": rotary embedding and the KV-cache write as two kernels, instead of one.
FUSED_ROTARY = "INFERENCE_ENGINE_FUSED_ROTARY"


def get(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def is_off(name: str) -> bool:
    """A switch that is on unless set to "0"."""
    return os.environ.get(name) == "0"


def is_on(name: str) -> bool:
    """A switch that is off unless set to "1" (or "true")."""
    return os.environ.get(name, "").lower() in ("1", "true")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE) or Path.home() / ".cache" / "inference_engine")
