"""The cine QC network: (image, class probabilities, uncertainty) of one frame -> predicted Dice."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class CineQcNet(nn.Module):
    """A small strided CNN with mean + max pooling and a sigmoid regression head.

    Inputs follow the app's QC contract (``app.engine.stages.QcStage``): ``image (N, 1, H, W)``
    (the model input of the newest frame, z-scored), ``probs (N, K, H, W)`` and
    ``uncertainty (N, 1, H, W)``; output ``dice (N,)`` in [0, 1].

    Args:
        n_classes: K, the segmentation model's classes (background included).
        width: Channels of the first convolution (doubled twice by the strided stages).
    """

    def __init__(self, n_classes: int = 4, width: int = 16):
        super().__init__()
        c = width
        self.features = nn.Sequential(_block(2 + n_classes, c, 1), _block(c, 2 * c, 2), _block(2 * c, 2 * c, 1),
                                      _block(2 * c, 4 * c, 2), _block(4 * c, 4 * c, 2))
        self.head = nn.Sequential(nn.Linear(8 * c, 4 * c), nn.ReLU(inplace=True), nn.Linear(4 * c, 1))
        self.n_classes, self.width = n_classes, width

    def forward(self, image: torch.Tensor, probs: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        f = self.features(torch.cat([image, probs, uncertainty], dim=1))
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return torch.sigmoid(self.head(pooled)).reshape(-1)
