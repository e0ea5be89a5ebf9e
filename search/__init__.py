"""cardiac-rt search: hardware-aware differentiable NAS (segqc-hw, msnas-hw, rtdnas), offline.

May import ``app`` (its torch-free data, readers and metrics); never imports Qt. Importing ``search``
stays cheap (no torch): ``build_from_card`` imports its builders when called.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["build_from_card"]


def build_from_card(card: Any, *, weights: bool = False, seed: int = 0) -> Any:
    """The PyTorch network a model card describes (``search.build.build_from_card``).

    Args:
        card: A ``app.cards.ModelCard``, a card dict, or the path of a card JSON file.
        weights: Load its weights (``<id>.pt`` beside the card, else recovered from the ONNX file).
        seed: Seeds the initialisation when ``weights`` is False.

    Returns:
        A ``torch.nn.Module`` in eval mode: the card's inputs in, its outputs out, in order.
    """
    from search.build import build_from_card as _build

    return _build(card, weights=weights, seed=seed)
