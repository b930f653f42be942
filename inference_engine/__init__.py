"""inference-engine: an OpenAI-compatible LLM inference server with paged attention and
continuous batching, for CUDA, ROCm and CPU.

The public names load on first use (PEP 562): `inference-engine serve --help` and a Ctrl-C
while the command line starts should not wait for torch."""
import importlib

_EXPORTS = {"LLM": "inference_engine.entrypoints.llm",
            "SamplingParams": "inference_engine.sampling_params",
            "PoolingParams": "inference_engine.pooling_params",
            "RequestOutput": "inference_engine.outputs",
            "CompletionOutput": "inference_engine.outputs",
            "EmbeddingRequestOutput": "inference_engine.outputs",
            "BeamSearchParams": "inference_engine.beam_search"}

__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'inference_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
