"""Model, gradients and per-rank numbers across the ranks: DDP over the weights, averaged arch grads.

:func:`wrap` puts DistributedDataParallel over a model's *weights*; architecture parameters are
listed in ``exclude`` and left out of DDP, because the first-order DARTS loops update them in their
own step (forward through the unwrapped module) and :func:`average_gradients` averages them before
``opt_arch.step()``. Weight steps go through the wrapper (``static_graph``: the weights a step uses,
all or not, are the same in every step). On one process every function here is the identity.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from search.distributed.runtime import is_distributed, world_size


def wrap(module: nn.Module, *, exclude: Iterable[nn.Parameter] = (), varying_graph: bool = False) -> nn.Module:
    """DistributedDataParallel over ``module``'s weights, or ``module`` itself on one process.

    Args:
        module: The network, already on its device (and loaded from a checkpoint if resuming).
        exclude: Parameters DDP must leave alone (architecture parameters): broadcast from rank 0
            once here, then kept equal by :func:`average_gradients` in their own step.
        varying_graph: The set of weights a step uses changes from step to step (a single-path
            sampled supernet, GDAS; every rank draws the same path): DDP looks for the unused
            ones on every step instead of learning one fixed set.

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
    if varying_graph:
        return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)
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
