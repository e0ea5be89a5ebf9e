"""Rank 0 writes alone: checkpoints, caches, latency tables, results, reports and exports.

The other ranks wait for it and read what it wrote (:func:`main_first`), or receive its result as a
broadcast object (:func:`share_from_main`, :func:`main_only`). On one process every function here
is the identity.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from search.distributed.runtime import barrier, is_distributed, is_main

T = TypeVar("T")


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (writing caches, tables, config), then the others run it.

    The block must be idempotent on what is on disk (read when there, produce when not): the other
    ranks find what rank 0 wrote and only read it. An exception on rank 0 skips the release, and
    torchrun stops the waiting ranks.
    """
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def share_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (a pickled broadcast; the identity on one process)."""
    if not is_distributed():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]


def main_only(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on rank 0 only (it may write) and return its result on every rank."""
    return share_from_main(fn(*args, **kwargs) if is_main() else None)
