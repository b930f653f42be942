"""Runs the single worker in the engine's own process."""
from inference_engine.config import EngineConfig
from inference_engine.core.scheduler import SchedulerOutputs
from inference_engine.model_executor.layers.sampler import SamplerOutput
from inference_engine.worker.worker import Worker


class LocalExecutor:
    def __init__(self, config: EngineConfig, eos_token_id: int | None):
        self.driver = Worker(config, eos_token_id)

    def determine_num_blocks(self) -> int:
        return self.driver.determine_num_blocks()

    def init_cache(self, num_blocks: int) -> None:
        self.driver.init_cache(num_blocks)

    def execute_model(self, sched: SchedulerOutputs) -> SamplerOutput:
        return self.driver.execute_model(sched)

    def check_health(self) -> None:
        """Raises if a worker is gone; the in-process worker lives as long as the engine."""

    def shutdown(self) -> None:
        """Nothing to stop in-process."""
