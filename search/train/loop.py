"""One resumable training stage: Adam + cosine schedule, a checkpoint after every epoch.

A stage (``"seg"``, ``"qc"``, ``"retrain"``, ...) writes ``<checkpoint_dir>/<stage>.pt`` after every
epoch with the model, optimiser, scheduler, the augmentation generator's state and the epoch
losses. Calling ``fit`` again with the same checkpoint resumes after the last finished epoch (a
finished stage just reloads its weights), so an interrupted ``python -m search`` loses at most one
epoch. Shuffling uses a torch Generator seeded with ``seed + epoch`` so a resumed run sees the same
batches as an uninterrupted one.

Under ``torchrun`` (``search.distributed``) the model trains as DistributedDataParallel on
rank-sharded batches (the batch size is the global batch), only rank 0 writes the checkpoint, every
rank resumes from it, and the ranks are checked to hold the same weights when the stage ends.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from search import distributed
from search.train import checkpoints, precision

log = logging.getLogger(__name__)

Batch = Sequence[torch.Tensor]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one stage.

    Attributes:
        epochs: Passes over the dataset (or ``steps_per_epoch`` batches each).
        batch_size: Samples per step.
        lr: Adam learning rate at the start of the cosine schedule.
        weight_decay: Adam weight decay.
        seed: Seeds shuffling and weight init done inside ``fit``'s caller via ``seed_everything``.
        steps_per_epoch: Cap on the batches of one epoch (None: the whole dataset).
    """

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    steps_per_epoch: int | None = None


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's legacy global state and ``random`` (for libraries we don't control)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def fit(model: nn.Module, loss_fn: LossFn, dataset: Dataset, cfg: TrainConfig, *,
        checkpoint: Path | None = None, parameters: Iterable[nn.Parameter] | None = None,
        progress: Callable[[int, int, float], None] | None = None) -> list[float]:
    """Train ``model`` for one stage, resuming from ``checkpoint`` when it exists.

    Args:
        model: The network being trained (its ``train()`` mode is set here).
        loss_fn: ``loss_fn(model, batch) -> scalar loss``.
        dataset: Yields the tuples ``loss_fn`` expects; a ``rng`` attribute (np Generator used for
            augmentation) is checkpointed too.
        cfg: Hyperparameters.
        checkpoint: ``.pt`` file written after each epoch (None: no checkpoints).
        parameters: What to optimise (default: all of ``model``'s parameters).
        progress: Called after each epoch with ``(epoch, epochs, mean_loss)``.

    Returns:
        Mean loss of each epoch (including epochs restored from the checkpoint).
    """
    params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs), eta_min=cfg.lr * 0.05)
    losses: list[float] = []
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = checkpoints.load(checkpoint)  # never finishes a stage in the other arithmetic
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        losses = list(state["losses"])
        start = int(state["epoch"])
        if getattr(dataset, "rng", None) is not None and state.get("dataset_rng") is not None:
            dataset.rng.bit_generator.state = state["dataset_rng"]
        log.info("resumed %s at epoch %d/%d", checkpoint, start, cfg.epochs)
    runner = distributed.wrap(model)  # DDP under torchrun (after the checkpoint is loaded), else model
    for epoch in range(start, cfg.epochs):
        model.train()
        shuffle = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=shuffle, drop_last=len(dataset) > cfg.batch_size)
        loader = distributed.shard_loader(loader)
        total, steps = 0.0, 0
        for batch in loader:
            with precision.autocast():  # bf16 where the command asked for it (search.train.precision)
                loss = loss_fn(runner, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            steps += 1
            if cfg.steps_per_epoch is not None and steps >= cfg.steps_per_epoch:
                break
        scheduler.step()
        losses.append(distributed.mean_over_ranks(total / max(1, steps)))
        log.info("epoch %d/%d loss %.4f", epoch + 1, cfg.epochs, losses[-1])
        if checkpoint is not None and distributed.is_main():
            _save(checkpoint, model, optimizer, scheduler, epoch + 1, losses, dataset, cfg)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, losses[-1])
    distributed.finish_stage(f"fit {checkpoint.name if checkpoint is not None else ''}", model)
    model.eval()
    return losses


def _save(path: Path, model: nn.Module, optimizer, scheduler, epoch: int, losses: list[float],
          dataset: Dataset, cfg: TrainConfig) -> None:
    rng = getattr(dataset, "rng", None)
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "epoch": epoch, "losses": losses, "config": asdict(cfg),
        "dataset_rng": rng.bit_generator.state if rng is not None else None,
    }
    checkpoints.save(state, path)  # atomic and stamped with the training precision
