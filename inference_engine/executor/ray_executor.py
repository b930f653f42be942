"""Tensor-parallel ranks 1..N-1 as Ray actors, one per GPU (one per CPU slot on CPU), in a
placement group whose first bundle is on the driver's node and stands for the driver's device.

This is how a model outgrows one machine: `ray start --head` (and `ray start --address=...` on
the other nodes), then start the engine with RAY_ADDRESS set.
"""
import logging
import os
import threading
import weakref
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from inference_engine.config import EngineConfig, resolve_device
from inference_engine.distributed.parallel_state import (destroy_distributed,
                                                          get_distributed_init_method, get_free_port)
from inference_engine.executor.base_executor import ExecutorBase, WorkerDeadError
from inference_engine.worker.worker import Worker

logger = logging.getLogger(__name__)

PLACEMENT_TIMEOUT_S = 300.0  # waiting longer for free devices would only hide a too-small cluster


class RayWorkerWrapper:
    """A rank inside a Ray actor; its Worker is built once the driver knows where the group
    meets. `wait_until_exit` never returns: its reference fails when the actor dies, which is
    how the driver learns of it without polling."""

    def __init__(self):
        self.worker: Worker | None = None

    @ray.method(concurrency_group="watch")
    def wait_until_exit(self) -> None:
        threading.Event().wait()

    def gpu_ids(self) -> list:
        return ray.get_gpu_ids()

    def init_worker(self, config: EngineConfig, eos_token_id: int | None, rank: int,
                    init_method: str) -> None:
        # Ray makes the actor's one GPU the only visible one, hence local rank 0.
        self.worker = Worker(config, eos_token_id, 0, rank, init_method)

    def execute_method(self, method: str, *args) -> Any:
        try:
            return getattr(self.worker, method)(*args)
        except Exception:
            # The driver may be waiting in a collective this rank will never join: the actor
            # leaves a moment after the error goes back, which fails that collective at once.
            threading.Timer(1.0, os._exit, (1,)).start()
            raise


class RayExecutor(ExecutorBase):
    """Joins the Ray cluster given by RAY_ADDRESS (or this process's ray.init()), or starts a
    local one, reserves one device per rank and starts the remote ranks as actors."""

    def __init__(self, config: EngineConfig, eos_token_id: int | None):
        super().__init__(config, eos_token_id)
        if not ray.is_initialized():
            ray.init()  # connects to RAY_ADDRESS when set
        world = config.parallel_config.tensor_parallel_size
        use_gpu = resolve_device(config.model_config.device).type == "cuda"
        resource = "GPU" if use_gpu else "CPU"
        have = ray.cluster_resources().get(resource, 0)
        if have < world:
            raise ValueError(f"tensor_parallel_size={world} needs {world} {resource}s in the Ray "
                             f"cluster, which has {have:g} (see `ray status`)")
        driver_ip = ray.util.get_node_ip_address()
        bundles = [{resource: 1.0} for _ in range(world)]
        bundles[0][f"node:{driver_ip}"] = 0.001  # the driver's own device is on its node
        self._pg = placement_group(bundles, strategy="PACK")
        self._actors: list = []
        self._finalizer = weakref.finalize(self, _release, self._actors, self._pg, self._stopping)
        try:
            self._start(config, eos_token_id, world, use_gpu, driver_ip)
        except BaseException as exc:
            self._mark_dead(f"start-up failed: {exc}")
            self.shutdown()
            raise
        logger.info("tensor parallel: the driver and %d Ray actor(s) are up", world - 1)

    def _start(self, config: EngineConfig, eos_token_id: int | None, world: int, use_gpu: bool,
               driver_ip: str) -> None:
        ready, _ = ray.wait([self._pg.ready()], timeout=PLACEMENT_TIMEOUT_S)
        if not ready:
            raise RuntimeError(f"Ray could not reserve {world} {'GPU' if use_gpu else 'CPU'}s "
                               f"(one on this node, {driver_ip}) within {PLACEMENT_TIMEOUT_S:.0f} s")
        actor_class = ray.remote(num_cpus=0 if use_gpu else 1, num_gpus=1 if use_gpu else 0,
                                 concurrency_groups={"watch": 1})(RayWorkerWrapper)

        def place(bundle: int):
            strategy = PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=bundle)
            return actor_class.options(scheduling_strategy=strategy).remote()

        self._actors.extend(place(i) for i in range(1, world))
        local_rank = 0
        if use_gpu:
            # An idle actor holds bundle 0's GPU, so that Ray gives it to no one else, and says
            # which one it is: the driver uses that device.
            holder = place(0)
            self._actors.append(holder)
            local_rank = _visible_index(ray.get(holder.gpu_ids.remote())[0])
        self._watch = [actor.wait_until_exit.remote() for actor in self._actors[:world - 1]]
        self._start_monitor(lambda watch=self._watch: _wait_for_death(watch))
        init_method = get_distributed_init_method(driver_ip, get_free_port())
        pending = [actor.init_worker.remote(config, eos_token_id, rank, init_method)
                   for rank, actor in enumerate(self._actors[:world - 1], start=1)]
        self.driver = Worker(config, eos_token_id, local_rank, 0, init_method)
        self._collect("init", pending, timeout=None)  # loading weights takes what it takes

    def _send(self, method: str, args: tuple) -> list:
        return [actor.execute_method.remote(method, *args)
                for actor in self._actors[:self.num_remote_ranks]]

    def _collect(self, method: str, pending: list, timeout: float | None) -> list[Any]:
        results = []
        for rank, ref in enumerate(pending, start=1):
            try:
                results.append(ray.get(ref, timeout=timeout))
            except GetTimeoutError:
                raise WorkerDeadError(f"rank {rank} did not answer {method} within {timeout:.0f} s")
            except RayActorError as exc:
                raise WorkerDeadError(f"rank {rank}'s Ray actor died: {_first_line(exc)}")
            except RayTaskError as exc:
                raise WorkerDeadError(f"rank {rank} failed in {method}:\n{exc}")
        return results

    def _find_dead_rank(self, wait_s: float = 0.0) -> str | None:
        watch = getattr(self, "_watch", [])
        if not watch:
            return None
        done, _ = ray.wait(watch, num_returns=1, timeout=wait_s)
        return _death_reason(watch, done[0]) if done else None

    def _stop_ranks(self) -> None:
        if self._dead is None and self.driver is not None:
            try:
                self._collect("shutdown", self._send("shutdown", ()), timeout=10.0)
            except Exception:  # a rank that cannot say goodbye is killed below
                pass
        self._finalizer()


def _visible_index(gpu_id) -> int:
    """The driver's torch index of the physical GPU Ray calls `gpu_id`."""
    for var in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        visible = os.environ.get(var)
        if visible:
            return visible.split(",").index(str(gpu_id))
    return int(gpu_id)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _death_reason(watch: list, ref) -> str:
    rank = watch.index(ref) + 1
    try:
        ray.get(ref, timeout=0)
    except Exception as exc:
        return f"rank {rank}'s Ray actor died: {_first_line(exc)}"
    return f"rank {rank}'s Ray actor stopped"


def _wait_for_death(watch: list) -> str:
    """Blocks until one rank's actor dies; says which (for the monitor thread)."""
    done, _ = ray.wait(watch, num_returns=1, timeout=None)
    return _death_reason(watch, done[0])


def _release(actors: list, pg, stopping: threading.Event) -> None:
    """Also the finalizer of an executor dropped without shutdown()."""
    stopping.set()
    destroy_distributed()
    if not ray.is_initialized():
        return
    for actor in actors:
        try:
            ray.kill(actor)
        except Exception:  # already gone
            pass
    try:
        remove_placement_group(pg)
    except Exception:
        pass
