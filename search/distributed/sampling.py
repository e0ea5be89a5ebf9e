"""The same batches, sharded by rank: a seeded ``DistributedSampler`` and a global batch split.

:func:`shard_loader` shards a loader's dataset with a ``DistributedSampler`` seeded from the
loader's generator (one pass = one sampler epoch). The preset's batch size is the *global* batch:
each rank takes ``batch_size // world`` samples, but at least ``min(batch, 2)`` (BatchNorm), so a
batch too small to split grows with the world instead (logged). On one process the loader is
returned as it is.
"""

from __future__ import annotations

import logging

import numpy as np
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from search.distributed.runtime import is_distributed, is_main, rank, world_size

log = logging.getLogger(__name__)


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
