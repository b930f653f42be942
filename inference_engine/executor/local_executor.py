"""Runs the single worker in the engine's own process (tensor_parallel_size=1)."""
from inference_engine.config import EngineConfig
from inference_engine.executor.base_executor import ExecutorBase
from inference_engine.worker.worker import Worker


class LocalExecutor(ExecutorBase):
    """The driver is the only rank; `_run_workers` calls it directly."""

    def __init__(self, config: EngineConfig, eos_token_id: int | None):
        if config.parallel_config.tensor_parallel_size != 1:
            raise ValueError("LocalExecutor runs one rank; use create_executor for more")
        super().__init__(config, eos_token_id)
        self.driver = Worker(config, eos_token_id)
