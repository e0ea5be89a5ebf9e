"""The process group: joining torchrun's, leaving it, and who this process is.

Started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), :func:`init_from_env` joins the
process group (gloo on a CPU-only machine; ``cpu:gloo,cuda:nccl`` where CUDA is available, so CPU
tensors go through gloo and GPU tensors through NCCL). Started any other way nothing changes: world
size 1, no process group; :func:`rank` is 0 and :func:`barrier` does nothing.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import logging
import os
import sys
from typing import Callable

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

#: Minutes a collective (a barrier while rank 0 profiles or evaluates, say) may wait.
TIMEOUT_ENV = "SEARCH_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 180


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """True on the process that writes (rank 0, or the only process)."""
    return rank() == 0


def backend() -> str:
    """``cpu:gloo,cuda:nccl`` when CUDA (and NCCL) is available, else ``gloo``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


_failed = False  # an uncaught exception happened on this rank (set by the excepthook below)


def _note_failure(hook: Callable) -> Callable:
    def excepthook(*exc_info) -> None:
        global _failed
        _failed = True
        hook(*exc_info)
    return excepthook


def init_from_env() -> bool:
    """Join torchrun's process group when launched by it with more than one process.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT`` (set by
    torchrun); selects the local GPU where there is one; quiets INFO logging on ranks other than 0.
    Idempotent. Returns True when the process is one of several ranks.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        minutes = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_MIN))
        dist.init_process_group(backend=backend(), timeout=datetime.timedelta(minutes=minutes))
        sys.excepthook = _note_failure(sys.excepthook)
        atexit.register(shutdown)
    if not is_main():
        logging.getLogger().setLevel(logging.WARNING)
    log.info("%d ranks (%s)", world_size(), backend())
    return True


def shutdown() -> None:
    """Leave the process group (registered at exit by :func:`init_from_env`).

    After a clean run every rank first waits for the others (a rank that left early, while rank 0
    still reports, must not close its connections under a peer: gloo aborts the process then);
    after an uncaught exception it leaves at once and torchrun stops the rest.
    """
    if dist.is_available() and dist.is_initialized():
        # DDP wrappers left in reference cycles hold the gloo group; freed during interpreter teardown
        # they abort the process ("terminate called without an active exception"). Free them now.
        gc.collect()
        if not _failed:
            barrier()
        dist.destroy_process_group()
        gc.collect()


def barrier() -> None:
    """Wait for every rank (a CPU all-reduce, so it works alike on gloo and NCCL)."""
    if is_distributed():
        dist.all_reduce(torch.zeros(1))
