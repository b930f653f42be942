"""What every executor shares: the driver worker (rank 0) in this process, `_run_workers`, and
the engine-facing API (determine_num_blocks, init_cache, execute_model, check_health, shutdown).

Subclasses only say how the remote ranks 1..N-1 receive a call (`_send`, `_collect`), how to
notice that one has died, and how to stop them.
"""
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from inference_engine.config import EngineConfig
from inference_engine.distributed.parallel_state import abort_distributed
from inference_engine.sample.device_samples import DeviceSamples
from inference_engine.sample.metadata import SamplingMetadata
from inference_engine.worker.model_input import ModelInput
from inference_engine.worker.worker import Worker

logger = logging.getLogger(__name__)

# Once the driver has finished its share of a call the remote ranks, held in step by the
# collectives, are done too; a rank that has not answered this long afterwards is stuck.
REPLY_TIMEOUT_S = 120.0


class WorkerDeadError(RuntimeError):
    """A tensor-parallel rank died, failed or stopped answering; the engine cannot go on."""


class ExecutorBase:
    """Runs every call on all ranks: remote ranks first (so they start at once), then the
    driver here; the collectives inside the model keep them in step."""

    def __init__(self, config: EngineConfig, eos_token_id: int | None):
        self.config = config
        self.eos_token_id = eos_token_id
        self.driver: Worker | None = None
        self._dead: WorkerDeadError | None = None
        # Set when the ranks are stopped on purpose (shutdown, or the finalizer at exit), so
        # that the monitor does not report their ends as deaths.
        self._stopping = threading.Event()

    @property
    def num_remote_ranks(self) -> int:
        return self.config.parallel_config.tensor_parallel_size - 1

    def determine_num_blocks(self) -> int:
        """Every rank holds the same blocks (its share of the heads), so the smallest wins."""
        return min(self._run_workers("determine_num_blocks"))

    def init_cache(self, num_blocks: int) -> None:
        self._run_workers("init_cache", num_blocks)

    def execute_model(self, model_input: ModelInput, meta: SamplingMetadata) -> DeviceSamples:
        """Launches the step, one call on every rank (`meta` only to the driver, which
        samples); its tokens stay on the device until the caller reads them."""
        return self._run_workers("execute_step", model_input, driver_args=(meta,))[0]

    def release_kv_memory(self) -> None:
        self._run_workers("release_kv_memory")

    def add_lora(self, request) -> None:
        """Reads and checks a LoRA adapter on every rank: on the driver first, so that a bad
        adapter fails its request alone (a failure on the remote ranks kills the engine)."""
        self.driver.add_lora(request)
        if self.num_remote_ranks:
            self._run_workers("add_lora", request)

    def remove_lora(self, lora_id: int) -> None:
        self._run_workers("remove_lora", lora_id)

    def check_health(self) -> None:
        """Raises WorkerDeadError if a rank has died or failed."""
        if self._dead is None:
            reason = self._find_dead_rank()
            if reason is not None:
                self._mark_dead(reason)
        if self._dead is not None:
            raise self._dead

    def shutdown(self) -> None:
        """Stops the remote ranks and leaves the process group; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self.driver is not None:  # before any rank leaves the group: see Worker.shutdown
            self.driver.release_cuda_graphs()
        self._stop_ranks()
        if self.driver is not None:
            self.driver.shutdown()

    def _run_workers(self, method: str, *args, driver_args: tuple = (),
                     timeout: float | None = REPLY_TIMEOUT_S) -> list[Any]:
        """Calls Worker.`method`(*args) on every rank, the driver's with `driver_args` after them
        (what only the driver needs); returns the results, the driver's first.

        With remote ranks any failure is fatal, as the ranks may now be out of step: the
        executor is marked dead and every later call raises the same WorkerDeadError.
        """
        if self._dead is not None:
            raise self._dead
        if self.num_remote_ranks == 0:
            return [getattr(self.driver, method)(*args, *driver_args)]
        pending = None
        try:
            pending = self._send(method, args)
            result = getattr(self.driver, method)(*args, *driver_args)
            return [result] + self._collect(method, pending, timeout)
        except Exception as exc:
            # A rank that failed, or died, takes the blame for the driver's broken collective:
            # its own error first (it left after sending it: see mp_executor._serve), else its
            # death (the driver may notice the closed connection before the rank is reaped).
            reason = (self._remote_error(method, pending) or self._find_dead_rank(wait_s=1.0)
                      or f"{method} failed: {exc}")
            self._mark_dead(reason, replace=True)
            raise self._dead from exc

    def _remote_error(self, method: str, pending: Any) -> str | None:
        """What a remote rank answered, if it failed, within a second."""
        try:
            self._collect(method, pending, timeout=1.0)
        except WorkerDeadError as exc:
            return str(exc) if "failed in" in str(exc) else None
        except Exception:
            return None
        return None

    def _mark_dead(self, reason: str, replace: bool = False) -> None:
        """`replace`: a more precise reason than the monitor's, which may have come first."""
        if replace and self._dead is not None:
            self._dead = WorkerDeadError(f"a tensor-parallel worker failed, the engine is dead: "
                                         f"{reason}")
            return
        if self._dead is None:
            logger.error("tensor-parallel worker failure: %s", reason)
            self._dead = WorkerDeadError(f"a tensor-parallel worker failed, the engine is dead: "
                                         f"{reason}")

    def _start_monitor(self, wait_for_death: Callable[[], str | None]) -> None:
        """Watches the remote ranks from a daemon thread: `wait_for_death` blocks until one is
        gone and says which. The thread holds the executor weakly so it can still be collected."""
        this, stopping = weakref.ref(self), self._stopping

        def watch() -> None:
            try:
                reason = wait_for_death()
            except Exception:  # the backend itself is going away (Ray shut down)
                return
            executor = this()
            if stopping.is_set() or executor is None:
                return
            executor._mark_dead(reason)
            abort_distributed()  # the driver may be blocked in a collective with the dead rank

        threading.Thread(target=watch, name="tp-worker-monitor", daemon=True).start()

    # What a backend provides.
    def _send(self, method: str, args: tuple) -> Any:
        """Starts `method` on every remote rank without waiting; returns what `_collect` needs."""
        raise NotImplementedError

    def _collect(self, method: str, pending: Any, timeout: float | None) -> list[Any]:
        """The remote ranks' results in rank order; raises WorkerDeadError on a failure."""
        raise NotImplementedError

    def _find_dead_rank(self, wait_s: float = 0.0) -> str | None:
        """Says which remote rank is gone, if one is (or goes within `wait_s` seconds)."""
        return None

    def _stop_ranks(self) -> None:
        """Stops the remote ranks (politely, then by force)."""
