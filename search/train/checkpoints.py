"""Mid-stage checkpoints: written atomically, stamped with their training precision, checked when resumed.

Every resumable loop (``search.train.loop.fit``'s per-epoch checkpoint, the bilevel search's, segqc-hw's joint
search and its shared warm-up) writes through :func:`save` and resumes through :func:`load`, so none can
leave a half-written file behind an interruption or finish a stage in the other arithmetic
(``search.train.precision.check_resume``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from search.train import precision


def save(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` (folders made) stamped with the precision it was trained in; a temporary file
    replaced in one step, so an interruption leaves the previous checkpoint, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(precision.stamp(state), tmp)
    tmp.replace(path)


def load(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (on the CPU); ``PrecisionMismatch`` when it was trained in the other precision."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    precision.check_resume(state, path)
    return state
