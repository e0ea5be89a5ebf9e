"""ResNet18-style quality-control network: predicts the Dice of a segmentation from
(image, segmentation probabilities, uncertainty map), concatenated inside the network.

ResNet18 layout (He et al.): 7x7/2 stem + 3x3/2 max pool, four stages of two basic blocks with
widths w, 2w, 4w, 8w (stride 2 from stage 2 on, 1x1 strided projection on the shortcut when the
shape changes), global average pooling, linear, sigmoid. The segqc-hw paper (Zeng et al. 2021,
arXiv:2109.06909) pairs U-nets with a "Resnet18" whose FLOPs (its Table II: 1045 M for
U-net(8)+ResNet18) imply a narrow ResNet18; ``width`` 16 (a quarter of torchvision's 64)
reproduces that budget at 256x256, so it is our default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ResNetQcConfig:
    """What the QC network is.

    Attributes:
        image_channels: Channels of the image input (3 for RGB echo).
        n_classes: Channels of the probability input (segmentation classes).
        width: Channels of the first stage (ResNet18: 64; ours 16, see module docstring).
        blocks: Basic blocks per stage (ResNet18: 2, 2, 2, 2).
    """

    image_channels: int = 3
    n_classes: int = 2
    width: int = 16
    blocks: tuple[int, ...] = (2, 2, 2, 2)

    @property
    def in_channels(self) -> int:
        return self.image_channels + self.n_classes + 1


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with a residual shortcut (1x1 strided projection if the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNetQc(nn.Module):
    """Predicted Dice in [0, 1] of a segmentation.

    ``forward(image (N, image_channels, H, W), probs (N, n_classes, H, W), uncertainty (N, 1, H, W))
    -> dice (N, 1)``.
    """

    def __init__(self, cfg: ResNetQcConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, w, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(w),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        c_in = w
        for s, n in enumerate(cfg.blocks):
            c_out = w * 2**s
            for b in range(n):
                stages.append(BasicBlock(c_in, c_out, stride=2 if (s > 0 and b == 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, 1)

    def forward(self, image: torch.Tensor, probs: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, probs, uncertainty], dim=1)
        x = self.stages(self.stem(x))
        return torch.sigmoid(self.fc(torch.flatten(self.pool(x), 1)))
