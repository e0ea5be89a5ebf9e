"""The end of a stage: rank 0's buffers everywhere, and a check that every rank holds the same network.

:func:`finish_stage` broadcasts rank 0's BatchNorm statistics and checks every rank's parameters
to be bitwise equal (``DesyncError`` otherwise; with ``SEARCH_DIST_DIGESTS=DIR`` each rank also
appends its digests to ``DIR/rank<r>.jsonl``, which the tests compare).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch.distributed as dist
from torch import nn

from search.distributed.ddp import broadcast_parameters
from search.distributed.runtime import is_distributed, rank, world_size

log = logging.getLogger(__name__)

#: Folder where every rank appends the digests :func:`finish_stage` computes (tests, debugging).
DIGESTS_ENV = "SEARCH_DIST_DIGESTS"


class DesyncError(RuntimeError):
    """Ranks hold different parameters at the end of a stage (their outputs would disagree)."""


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
