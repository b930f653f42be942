"""inference-engine: an OpenAI-compatible LLM inference server with paged attention and
continuous batching, for CUDA, ROCm and CPU."""
from inference_engine.entrypoints.llm import LLM
from inference_engine.outputs import CompletionOutput, RequestOutput
from inference_engine.sampling_params import SamplingParams

__all__ = ["LLM", "SamplingParams", "RequestOutput", "CompletionOutput"]
__version__ = "0.1.0"
