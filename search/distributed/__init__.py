"""Search and retraining on ``torchrun``: PyTorch's own process group and DistributedDataParallel.

Started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), :func:`init_from_env` joins the
process group (gloo on a CPU-only machine; ``cpu:gloo,cuda:nccl`` where CUDA is available, so CPU
tensors go through gloo and GPU tensors through NCCL). Started any other way nothing changes: world
size 1, no process group, and every function below is a no-op or the identity.

What the methods' loops call (small hooks, one idea each). Each group lives in its own module and
is re-exported here, so callers write ``from search import distributed``:

* ``runtime``: :func:`init_from_env`, :func:`shutdown`, :func:`barrier`, and who this process is
  (:func:`rank`, :func:`world_size`, :func:`is_main`, ...).
* ``ddp``: :func:`wrap`, DistributedDataParallel over a model's *weights*; architecture parameters
  are listed in ``exclude`` and left out of DDP, because the first-order DARTS loops update them in
  their own step (forward through the unwrapped module) and :func:`average_gradients` averages
  them before ``opt_arch.step()``. Weight steps go through the wrapper (``static_graph``: the
  weights a step uses, all or not, are the same in every step).
* ``sampling``: :func:`shard_loader`, the same batches, sharded by rank with a
  ``DistributedSampler`` seeded from the loader's generator (one pass = one sampler epoch). The
  preset's batch size is the *global* batch: each rank takes ``batch_size // world`` samples, but
  at least ``min(batch, 2)`` (BatchNorm), so a batch too small to split grows with the world
  instead (logged).
* ``rank0``: :func:`main_first`, :func:`share_from_main`, :func:`main_only`: rank 0 alone writes
  checkpoints, caches, latency tables, results, reports and exports; the others wait for it and
  read what it wrote, or receive its result as a broadcast object.
* ``sync``: :func:`finish_stage`: at the end of a search or training stage, rank 0's BatchNorm
  statistics are broadcast and every rank's parameters are checked to be bitwise equal
  (``DesyncError`` otherwise; with ``SEARCH_DIST_DIGESTS=DIR`` each rank also appends its digests
  to ``DIR/rank<r>.jsonl``, which the tests compare).

Multi-node runs need the run folder on a file system every node sees (rank 0 writes, the others
read checkpoints and caches from it).
"""

from search.distributed.ddp import average_gradients, broadcast_parameters, mean_over_ranks, wrap
from search.distributed.rank0 import main_first, main_only, share_from_main
from search.distributed.runtime import (
    DEFAULT_TIMEOUT_MIN,
    TIMEOUT_ENV,
    backend,
    barrier,
    init_from_env,
    is_distributed,
    is_main,
    local_rank,
    rank,
    shutdown,
    world_size,
)
from search.distributed.sampling import ShardSampler, shard_loader, split_batch
from search.distributed.sync import DIGESTS_ENV, DesyncError, digests, finish_stage

__all__ = [
    "DEFAULT_TIMEOUT_MIN", "DIGESTS_ENV", "TIMEOUT_ENV", "DesyncError", "ShardSampler", "average_gradients",
    "backend", "barrier", "broadcast_parameters", "digests", "finish_stage", "init_from_env", "is_distributed",
    "is_main", "local_rank", "main_first", "main_only", "mean_over_ranks", "rank", "share_from_main",
    "shard_loader", "shutdown", "split_batch", "world_size", "wrap",
]
