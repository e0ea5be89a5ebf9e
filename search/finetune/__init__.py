"""``python -m search finetune``: adapt a shipped segmentation network to a user's labelled data.

The architecture stays the card's, and the weights start from the model's own
(``search.build_from_card(card, weights=True)``: ``<id>.pt`` beside the card, else recovered from the
ONNX initializers with every BatchNorm folded into its convolution). Training uses the methods' own
segmentation loss (cross-entropy + soft Dice, ``search.train.losses``) through the shared loop
(``search.train.loop.fit``), keeps the weights of the best validation epoch (early stopping, the
starting weights included), and exports through the one export path
(``search.export.onnx_export.export_model``, with its parity check).

BatchNorm is frozen (eval mode, running statistics fixed; its scale and shift still train) in every
case: for a model recovered from a BN-folded ONNX file the statistics are the identity that makes
the folded convolution right, and batch statistics would break it; with a real ``.pt`` it keeps the
statistics of the original training set, which a few small batches of new data cannot estimate
better. So before the first step the network computes exactly what the shipped ONNX file computes.

A streaming model (``streaming`` in its card) is fine-tuned as the causal clip network it runs, on
clips z-scored per frame, and exported again in streaming form (``search.export.streaming``, parity
on streamed frames); see ``search.finetune.run``.

Modules: ``target`` (which model, and the clear errors), ``data`` (phantom or ``--data KIND:DIR``,
split by patient into train / val / test), ``run`` (train, evaluate before and after, export),
``cli`` (the command line).

Imports are lazy (``python -m search --help`` builds every subcommand's parser without torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"FinetuneConfig": "run", "FinetuneResult": "run", "finetune": "run",
            "FinetuneError": "target", "Target": "target", "load_target": "target"}

__all__ = ["FinetuneConfig", "FinetuneError", "FinetuneResult", "Target", "finetune", "load_target"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'search.finetune' has no attribute {name!r}")
    return getattr(importlib.import_module(f"search.finetune.{_EXPORTS[name]}"), name)
