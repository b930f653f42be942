"""An engine for GPU tests that is shut down, and its memory freed, when the test is done."""
import gc
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from inference_engine import LLM


@contextmanager
def float32_engine(path: str, dtype: str = "float32", **kwargs) -> Iterator[LLM]:
    """LLM(path) in float32 (or `dtype`) on the GPU with 1024 cache blocks; shut down on
    leaving."""
    llm = LLM(path, dtype=dtype, device="cuda", skip_tokenizer_init=True,
              num_gpu_blocks_override=1024, **kwargs)
    try:
        yield llm
    finally:
        llm.llm_engine.executor.shutdown()
        del llm
        gc.collect()
        torch.cuda.empty_cache()
