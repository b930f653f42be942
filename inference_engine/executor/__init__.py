"""Executors run the workers: in-process for one rank, spawned processes (`mp`) or Ray actors
(`ray`) for the other ranks of a tensor-parallel group."""
from inference_engine.config import EngineConfig
from inference_engine.executor.base_executor import ExecutorBase, WorkerDeadError


def create_executor(config: EngineConfig, eos_token_id: int | None) -> ExecutorBase:
    """The executor for `config.parallel_config`; checks first that the model splits."""
    parallel = config.parallel_config
    parallel.verify_with_model_config(config.model_config)
    if parallel.tensor_parallel_size == 1:
        from inference_engine.executor.local_executor import LocalExecutor
        return LocalExecutor(config, eos_token_id)
    if parallel.distributed_executor_backend == "ray":
        from inference_engine.executor.ray_executor import RayExecutor
        return RayExecutor(config, eos_token_id)
    from inference_engine.executor.mp_executor import MPExecutor
    return MPExecutor(config, eos_token_id)


__all__ = ["ExecutorBase", "WorkerDeadError", "create_executor"]
