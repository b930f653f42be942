"""Tensor-parallel ranks 1..N-1 as processes spawned on this node, each driven over a pipe.

Messages are pickled with the standard pickler (tensors travel as bytes, not as shared-memory
handles, which would cost a file per tensor per step): the driver sends (method, args) and the
rank answers ("ok", result) or ("error", traceback).
"""
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from inference_engine.config import EngineConfig, resolve_device
from inference_engine.distributed.parallel_state import (destroy_distributed,
                                                          get_distributed_init_method, get_free_port)
from inference_engine.executor.base_executor import ExecutorBase, WorkerDeadError
from inference_engine.worker.worker import Worker

logger = logging.getLogger(__name__)


class MPExecutor(ExecutorBase):
    """Spawns one process per remote rank (`spawn`: CUDA cannot be forked); rank r uses cuda:r."""

    def __init__(self, config: EngineConfig, eos_token_id: int | None):
        super().__init__(config, eos_token_id)
        ctx = multiprocessing.get_context("spawn")
        init_method = get_distributed_init_method("127.0.0.1", get_free_port())
        self._procs: list[multiprocessing.Process] = []
        self._conns: list[Connection] = []
        for rank in range(1, self.num_remote_ranks + 1):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, name=f"tp-rank-{rank}", daemon=True,
                               args=(child, config, eos_token_id, rank, init_method))
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
        self._finalizer = weakref.finalize(self, _stop_processes, self._procs, self._conns,
                                           self._stopping)
        try:
            # Each rank says hello once its imports are done; joining the rendezvous before
            # that would leave the driver waiting out the timeout for a rank that crashed.
            self._collect("start-up", None, timeout=None)
            self._start_monitor(lambda procs=self._procs: _wait_for_exit(procs))
            self.driver = Worker(config, eos_token_id, 0, 0, init_method)
            self._collect("init", None, timeout=None)  # loading weights takes what it takes
        except BaseException as exc:
            self._mark_dead(f"start-up failed: {exc}")
            self.shutdown()
            raise
        logger.info("tensor parallel: the driver and %d spawned rank(s) are up",
                    self.num_remote_ranks)

    def _send(self, method: str, args: tuple) -> None:
        data = pickle.dumps((method, args), protocol=pickle.HIGHEST_PROTOCOL)
        for conn in self._conns:
            conn.send_bytes(data)

    def _collect(self, method: str, pending: Any, timeout: float | None) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        results = []
        for rank, (proc, conn) in enumerate(zip(self._procs, self._conns), start=1):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not wait([conn, proc.sentinel], left):
                raise WorkerDeadError(f"rank {rank} did not answer {method} within {timeout:.0f} s")
            try:
                status, value = pickle.loads(conn.recv_bytes()) if conn.poll() else (None, None)
            except (EOFError, OSError):
                status = None
            if status is None:
                raise WorkerDeadError(_describe_exit(rank, proc))
            if status == "error":
                raise WorkerDeadError(f"rank {rank} failed in {method}:\n{value}")
            results.append(value)
        return results

    def _find_dead_rank(self, wait_s: float = 0.0) -> str | None:
        ended = wait([proc.sentinel for proc in self._procs], wait_s)
        for rank, proc in enumerate(self._procs, start=1):
            if proc.sentinel in ended:
                return _describe_exit(rank, proc)
        return None

    def _stop_ranks(self) -> None:
        if self._dead is None:
            try:
                self._send("shutdown", ())
                self._collect("shutdown", None, timeout=10.0)
            except Exception:  # a rank that cannot say goodbye is stopped below
                pass
        self._finalizer()


def _describe_exit(rank: int, proc: multiprocessing.Process) -> str:
    # A rank whose pipe broke is exiting, and the monitor thread may be reaping it right now
    # (then exitcode reads None here until that thread has stored it): give it a moment.
    deadline = time.monotonic() + 2.0
    while proc.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    code = proc.exitcode
    how = ("is still running but its pipe broke" if code is None
           else f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
    return f"rank {rank} (pid {proc.pid}) {how}"


def _wait_for_exit(procs: list[multiprocessing.Process]) -> str:
    """Blocks until one rank process ends; says which (for the monitor thread)."""
    sentinels = {proc.sentinel: rank for rank, proc in enumerate(procs, start=1)}
    rank = sentinels[wait(list(sentinels))[0]]
    return _describe_exit(rank, procs[rank - 1])


def _stop_processes(procs: list[multiprocessing.Process], conns: list[Connection],
                    stopping: threading.Event) -> None:
    """Also the finalizer of an executor dropped without shutdown(): closing the pipes tells
    the ranks to leave; those that do not are killed."""
    stopping.set()
    for conn in conns:
        conn.close()
    for proc in procs:
        proc.join(5.0)
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
    destroy_distributed()


def _reply(conn: Connection, status: str, value: Any) -> None:
    conn.send_bytes(pickle.dumps((status, value), protocol=pickle.HIGHEST_PROTOCOL))


def _worker_main(conn: Connection, config: EngineConfig, eos_token_id: int | None, rank: int,
                 init_method: str) -> None:
    """A rank process: build the Worker, then serve the driver's calls until told to stop or
    until the driver's end of the pipe closes (the driver is gone)."""
    # Ctrl-C reaches the whole process group; only the driver decides when ranks stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _reply(conn, "ok", None)
    world_size = config.parallel_config.tensor_parallel_size
    if resolve_device(config.model_config.device).type == "cpu":
        # N ranks share the cores: without this each would start a thread per core.
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // world_size))
    try:
        worker = Worker(config, eos_token_id, rank, rank, init_method)
    except BaseException:
        _reply(conn, "error", traceback.format_exc())
        return
    try:
        _reply(conn, "ok", None)
        _serve(conn, worker)
    except (EOFError, OSError):  # the driver is gone
        pass
    finally:
        worker.shutdown()


def _serve(conn: Connection, worker: Worker) -> None:
    while True:
        method, args = pickle.loads(conn.recv_bytes())
        try:
            result = ("ok", getattr(worker, method)(*args))
        except Exception:
            result = ("error", traceback.format_exc())
        _reply(conn, *result)
        # After a failure the rank leaves: the driver may be waiting in a collective this rank
        # will never join, and the closed connections fail it at once (the monitor aborts
        # NCCL's), where it would otherwise wait out the collective timeout.
        if method == "shutdown" or result[0] == "error":
            return
