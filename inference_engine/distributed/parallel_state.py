"""The tensor-parallel group: setting it up, rank and size, and the collectives the layers need.

Every rank of the engine is one member of torch.distributed's default group (the driver is
rank 0). With no group initialised every call degrades to the single-rank case, so the model
code is the same for one rank and many.
"""
import logging
import socket
import threading
from datetime import timedelta

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# How long a collective (or the start-up rendezvous) may wait for a peer before it fails. Steps
# take seconds at most, and no rank waits in a collective between steps, so a wait this long
# means a peer is gone.
COLLECTIVE_TIMEOUT = timedelta(minutes=5)


def get_free_port() -> int:
    """A TCP port free on this host now, for the rendezvous of a new group."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def get_distributed_init_method(host: str, port: int) -> str:
    return f"tcp://{host}:{port}"


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs (torch maps it to RCCL on ROCm), gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(world_size: int, rank: int, init_method: str, device: torch.device) -> None:
    """Joins the tensor-parallel group; blocks until all `world_size` ranks have joined."""
    dist.init_process_group(backend_for(device), init_method=init_method, world_size=world_size,
                            rank=rank, timeout=COLLECTIVE_TIMEOUT)
    # NCCL builds its communicator at the first collective, which must not be one inside a
    # CUDA-graph capture; this one also proves every rank can reach the others.
    dist.all_reduce(torch.zeros(1, device=device))
    logger.info("rank %d of %d joined the %s group", rank, world_size, backend_for(device))


TEARDOWN_TIMEOUT_S = 15.0


def destroy_distributed() -> None:
    """Leaves the process group, waiting at most TEARDOWN_TIMEOUT_S.

    On two GPUs, once CUDA graphs had captured NCCL all-reduces, the teardown at shutdown hung
    (seen with both destroy and abort; the cause is not found yet). A shutdown must not hang the
    caller, so the teardown runs in a daemon thread and is abandoned after the timeout.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return

    def teardown() -> None:
        if dist.get_backend() == "nccl":
            torch.cuda.synchronize()
            abort_distributed()  # an abort waits for no peer; nothing is in flight by now
        else:
            dist.destroy_process_group()
    thread = threading.Thread(target=teardown, name="distributed-teardown", daemon=True)
    thread.start()
    thread.join(TEARDOWN_TIMEOUT_S)
    if thread.is_alive():
        logger.warning("leaving the process group did not finish within %.0f s; abandoned",
                       TEARDOWN_TIMEOUT_S)


def abort_distributed() -> None:
    """Unblocks this process when it waits in an NCCL collective for a peer that has died.

    gloo notices a closed connection and raises by itself; NCCL kernels would spin until the
    timeout, so their communicators are aborted (torch's API for this is still experimental).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_backend() != "nccl":
        return
    try:
        dist.distributed_c10d._abort_process_group()
    except Exception:  # best effort: the engine is already marked dead
        logger.exception("aborting the NCCL communicators failed")


def get_tp_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_tp_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sums `x` over all ranks, in place."""
    if get_tp_world_size() > 1:
        dist.all_reduce(x)
    return x


def broadcast_from_rank0(x: torch.Tensor) -> torch.Tensor:
    """Overwrites `x` on every rank with rank 0's `x`, in place."""
    if get_tp_world_size() > 1:
        dist.broadcast(x, src=0)
    return x


def gather_to_rank0(x: torch.Tensor, dim: int = -1) -> torch.Tensor | None:
    """Concatenates every rank's shard along `dim` on rank 0; other ranks get None."""
    world = get_tp_world_size()
    if world == 1:
        return x
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(world)] if get_tp_rank() == 0 else None
    dist.gather(x, parts, dst=0)
    return torch.cat(parts, dim=dim) if parts is not None else None
