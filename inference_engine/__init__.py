"""inference-engine: an OpenAI-compatible LLM inference server with paged attention and
continuous batching, for CUDA, ROCm and CPU."""
from inference_engine.beam_search import BeamSearchParams
from inference_engine.entrypoints.llm import LLM
from inference_engine.outputs import CompletionOutput, EmbeddingRequestOutput, RequestOutput
from inference_engine.pooling_params import PoolingParams
from inference_engine.sampling_params import SamplingParams

__all__ = ["LLM", "SamplingParams", "PoolingParams", "RequestOutput", "CompletionOutput",
           "EmbeddingRequestOutput", "BeamSearchParams"]
__version__ = "0.1.0"
