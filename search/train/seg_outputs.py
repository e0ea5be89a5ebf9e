"""What a deployed segmentation network outputs: softmax probabilities and an uncertainty map.

The uncertainty is the per-pixel entropy of the softmax divided by log(C), so it lies in [0, 1]
(0 = certain, 1 = uniform). It is computed inside the graph, so it ships in the ONNX model and the
QC network at the scanner sees exactly what it saw in training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ENTROPY_EPS = 1e-6


def probs_and_uncertainty(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the class axis and its normalised entropy.

    Args:
        logits: ``(N, C, *spatial)`` class logits, C >= 2.

    Returns:
        probs ``(N, C, *spatial)`` and uncertainty ``(N, 1, *spatial)`` in [0, 1].
    """
    if logits.dtype != torch.float32:  # bf16 training (search.train.precision): QC inputs and targets in float32;
        logits = logits.float()  # a Python branch, so the exported float32 graph has no extra node
    n_classes = logits.shape[1]
    probs = torch.softmax(logits, dim=1)
    entropy = -(probs * torch.log(probs + ENTROPY_EPS)).sum(dim=1, keepdim=True)
    return probs, (entropy / math.log(n_classes)).clamp(0.0, 1.0)


class SegmentationWithUncertainty(nn.Module):
    """Wraps a logits network so it returns ``(probs, uncertainty)`` (the exported seg interface)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return probs_and_uncertainty(self.net(x))
