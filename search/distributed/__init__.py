"""Search and retraining on ``torchrun``: PyTorch's own process group and DistributedDataParallel.

Started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), :func:`init_from_env` joins the
process group (gloo on a CPU-only machine; ``cpu:gloo,cuda:nccl`` where CUDA is available, so CPU
tensors go through gloo and GPU tensors through NCCL). Started any other way nothing changes: world
size 1, no process group, and every function below is a no-op or the identity.

What the methods' loops call (small hooks, one idea each):

* :func:`wrap`: DistributedDataParallel over a model's *weights*; architecture parameters are
  listed in ``exclude`` and left out of DDP, because the first-order DARTS loops update them in
  their own step (forward through the unwrapped module) and :func:`average_gradients` averages
  them before ``opt_arch.step()``. Weight steps go through the wrapper (``static_graph``: the
  weights a step uses, all or not, are the same in every step).
* :func:`shard_loader`: the same batches, sharded by rank with a ``DistributedSampler`` seeded
  from the loader's generator (one pass = one sampler epoch). The preset's batch size is the
  *global* batch: each rank takes ``batch_size // world`` samples, but at least ``min(batch, 2)``
  (BatchNorm), so a batch too small to split grows with the world instead (logged).
* :func:`main_first`, :func:`share_from_main`, :func:`main_only`, :func:`is_main`: rank 0 alone
  writes checkpoints, caches, latency tables, results, reports and exports; the others wait for it
  and read what it wrote, or receive its result as a broadcast object.
* :func:`finish_stage`: at the end of a search or training stage, rank 0's BatchNorm statistics
  are broadcast and every rank's parameters are checked to be bitwise equal (``DesyncError``
  otherwise; with ``SEARCH_DIST_DIGESTS=DIR`` each rank also appends its digests to
  ``DIR/rank<r>.jsonl``, which the tests compare).

Multi-node runs need the run folder on a file system every node sees (rank 0 writes, the others
read checkpoints and caches from it).
"""

from __future__ import annotations

import atexit
import datetime
import gc
import hashlib
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Minutes a collective (a barrier while rank 0 profiles or evaluates, say) may wait.
TIMEOUT_ENV = "SEARCH_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 180
#: Folder where every rank appends the digests :func:`finish_stage` computes (tests, debugging).
DIGESTS_ENV = "SEARCH_DIST_DIGESTS"


class DesyncError(RuntimeError):
    """Ranks hold different parameters at the end of a stage (their outputs would disagree)."""


# ------------------------------------------------------------------------------ process group
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


# ------------------------------------------------------------------------ rank 0 writes alone
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


# ------------------------------------------------------------------------------ model and grads
def wrap(module: nn.Module, *, exclude: Iterable[nn.Parameter] = ()) -> nn.Module:
    """DistributedDataParallel over ``module``'s weights, or ``module`` itself on one process.

    Args:
        module: The network, already on its device (and loaded from a checkpoint if resuming).
        exclude: Parameters DDP must leave alone (architecture parameters): broadcast from rank 0
            once here, then kept equal by :func:`average_gradients` in their own step.

    Returns:
        The module to call in weight steps (its ``.module`` is ``module``); optimisers, checkpoints
        and ``train()`` / ``eval()`` keep using ``module``.
    """
    if not is_distributed():
        return module
    excluded = {id(p) for p in exclude}
    names = [n for n, p in module.named_parameters() if id(p) in excluded]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
    broadcast_parameters(p for p in module.parameters() if id(p) in excluded)
    device = next(module.parameters()).device
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    # static_graph: every weight step uses the same weights, whichever they are (a supernet may leave some
    # unused); DDP learns the set in the first step instead of searching the graph on every step.
    return DistributedDataParallel(module, device_ids=device_ids, static_graph=True)


def broadcast_parameters(params: Iterable[torch.Tensor]) -> None:
    """Overwrite ``params`` with rank 0's values."""
    if not is_distributed():
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the ranks, in place (call between backward and step).

    A parameter without a gradient on some ranks counts as a zero gradient there; one without a
    gradient on every rank keeps ``grad = None`` (so Adam skips it exactly as on one process). One
    flat all-reduce per device.
    """
    if not is_distributed():
        return
    by_device: dict[torch.device, list[nn.Parameter]] = {}
    for p in params:
        by_device.setdefault(p.device, []).append(p)
    n = float(world_size())
    for device, group in by_device.items():
        present = torch.tensor([p.grad is not None for p in group], dtype=torch.float32, device=device)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
        dist.all_reduce(present)
        dist.all_reduce(flat)
        flat /= n
        offset = 0
        for p, seen in zip(group, present.tolist()):
            size = p.numel()
            if seen:
                p.grad = flat[offset:offset + size].view_as(p).clone()
            offset += size


def mean_over_ranks(value: float) -> float:
    """The mean of a per-rank number (e.g. an epoch's loss on each shard)."""
    if not is_distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item() / world_size())


# ------------------------------------------------------------------------------------- data
class ShardSampler(DistributedSampler):
    """``DistributedSampler`` that moves to the next epoch by itself after every pass.

    Loops that draw batches forever from one loader (step-based searches) get a new seeded order
    on every pass, as a ``RandomSampler`` with a generator would; loops that build a loader per
    epoch seed it per epoch and use one pass.
    """

    def __iter__(self):
        order = super().__iter__()
        self.set_epoch(self.epoch + 1)
        return order


_noted: set[int | None] = set()


def split_batch(batch_size: int) -> int:
    """Per-rank share of a global batch: ``batch // world``, but never below ``min(batch, 2)``.

    A preset that chose two or more samples per step keeps at least two per rank (BatchNorm after
    global pooling cannot train on one sample), so a small batch grows with the world instead.
    """
    return max(min(int(batch_size), 2), int(batch_size) // world_size())


def shard_loader(loader: DataLoader) -> DataLoader:
    """The loader's dataset sharded over the ranks (the loader itself on one process).

    The shuffle seed is the loader's generator seed; every rank gets ``ceil(len / world)`` samples
    (``DistributedSampler`` pads by repeating; a dataset smaller than the ranks' batches is repeated
    to fill one batch per rank) in batches of :func:`split_batch`, so every rank makes the same
    number of steps. A trailing batch of one sample is dropped when batches are
    larger (BatchNorm after global pooling cannot train on one sample), as is a partial batch when
    the loader drops partial batches. A dataset's augmentation generator (``rng``) is moved to a
    distinct stream on every rank other than 0 (``jumped(rank)``).
    """
    if not is_distributed():
        return loader
    dataset = loader.dataset
    seed = loader.generator.initial_seed() if loader.generator is not None else 0
    sampler = ShardSampler(dataset, num_replicas=world_size(), rank=rank(),
                           shuffle=isinstance(loader.sampler, RandomSampler), seed=seed)
    per_rank = split_batch(loader.batch_size or 1)
    if is_main() and per_rank * world_size() != loader.batch_size and loader.batch_size not in _noted:
        _noted.add(loader.batch_size)
        log.warning("batch %s is smaller than or not a multiple of %d ranks: %d per rank, global batch %d",
                    loader.batch_size, world_size(), per_rank, per_rank * world_size())
    if sampler.num_samples < min(per_rank, len(dataset)):  # tiny dataset: fill each rank's batch by repeating
        sampler.num_samples = min(per_rank, len(dataset))
        sampler.total_size = sampler.num_samples * world_size()
    n = len(sampler)
    drop = n > per_rank and (loader.drop_last or (per_rank > 1 and n % per_rank == 1))
    _rank_stream(dataset)
    return DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=drop, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory)


def _rank_stream(dataset: Dataset) -> None:
    rng = getattr(dataset, "rng", None)
    if rank() == 0 or not isinstance(rng, np.random.Generator) or getattr(dataset, "_rank_stream", False):
        return
    bits = rng.bit_generator
    jumped = bits.jumped(rank()) if hasattr(bits, "jumped") else np.random.PCG64(rng.integers(2**63) + rank())
    dataset.rng = np.random.Generator(jumped)
    dataset._rank_stream = True


# ------------------------------------------------------------------------------ end of a stage
def _arch_parameters(module: nn.Module) -> list[nn.Parameter]:
    """A supernet's architecture parameters; none for a derived network (wrappers may still ask it)."""
    try:
        return list(module.arch_parameters())
    except AttributeError:
        return []


def digests(*modules: nn.Module) -> dict[str, str]:
    """SHA-256 (16 hex digits) of each module's weights, architecture parameters and buffers."""
    arch_ids = {id(p) for m in modules for p in _arch_parameters(m)}
    parts: dict[str, hashlib._Hash] = {k: hashlib.sha256() for k in ("weights", "arch", "buffers")}
    for i, m in enumerate(modules):
        for name, p in m.named_parameters():
            part = "arch" if id(p) in arch_ids else "weights"
            parts[part].update(f"{i}.{name}".encode())
            parts[part].update(p.detach().cpu().contiguous().numpy().tobytes())
        for name, b in m.named_buffers():
            parts["buffers"].update(f"{i}.{name}".encode())
            parts["buffers"].update(b.detach().cpu().contiguous().numpy().tobytes())
    return {k: h.hexdigest()[:16] for k, h in parts.items()}


def finish_stage(tag: str, *modules: nn.Module) -> None:
    """End of a search / training stage on every rank: rank 0's buffers, an equality check, a barrier.

    Raises:
        DesyncError: some rank's weights, architecture parameters or buffers differ from rank 0's.
    """
    if not is_distributed():
        return
    for m in modules:
        broadcast_parameters(m.buffers())
    mine = digests(*modules)
    folder = os.environ.get(DIGESTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / f"rank{rank()}.jsonl", "a") as f:
            f.write(json.dumps({"tag": tag, "world": world_size(), **mine}) + "\n")
    everyone: list[dict[str, str] | None] = [None] * world_size()
    dist.all_gather_object(everyone, mine)
    bad = [r for r, d in enumerate(everyone) if d != everyone[0]]
    if bad:
        raise DesyncError(f"{tag}: ranks {bad} hold other parameters than rank 0 ({everyone})")
    log.info("%s: %d ranks in sync (%s)", tag, world_size(), mine)


__all__ = [
    "DesyncError", "ShardSampler", "average_gradients", "backend", "barrier", "broadcast_parameters", "digests",
    "finish_stage", "init_from_env", "is_distributed", "is_main", "local_rank", "main_first",
    "main_only", "mean_over_ranks", "rank", "share_from_main", "shard_loader", "shutdown", "split_batch", "world_size",
    "wrap",
]
