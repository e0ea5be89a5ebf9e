"""The PyTorch weights the export writes beside each ONNX file: ``models/<id>.pt``.

The file is ``torch.save({"format": WEIGHTS_FORMAT, "model_id": ..., "state_dict": ...})`` of the
exported module (the network inside its output interface, exactly what ``search.build_from_card``
rebuilds), so ``build_from_card(card, weights=True)`` gives back the network that was exported, with
its BatchNorm statistics (the ONNX file has them folded into the convolutions). Fine-tuning starts
from it. The app never reads it (the scanner bundle and the wheel ship only ``*.onnx`` and ``*.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

WEIGHTS_FORMAT = "cardiac-rt/state-dict@1"


def save_weights(module: nn.Module, path: Path, model_id: str) -> Path:
    """Write ``module``'s state dict (CPU tensors) as ``path``; returns ``path``."""
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "model_id": model_id, "state_dict": state}, Path(path))
    return Path(path)


def load_weights(path: Path) -> dict[str, Any]:
    """The state dict in a weights file written by ``save_weights`` (a clear error for anything else)."""
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, runtime and zip errors alike
        raise ValueError(f"{path}: not a readable weights file ({exc})") from None
    if not isinstance(blob, Mapping) or blob.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a {WEIGHTS_FORMAT} weights file")
    return dict(blob["state_dict"])
