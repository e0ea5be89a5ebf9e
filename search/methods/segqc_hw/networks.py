"""The two networks of the framework behind one interface, whatever builds them.

The framework (``framework.run_framework``), the retraining harness and the exporter all talk to

* a segmentation net: ``images (N, 3, H, W) -> logits (N, 2, H, W)``;
* a QC net: ``(image (N, 3, H, W), probs (N, 2, H, W), uncertainty (N, 1, H, W)) -> Dice (N,)``.

The core's NAS-Unet networks return ``(logits, entropy)`` and its QC networks take the concatenated
input; the baselines return logits and take the three tensors. These thin wrappers make them alike
(and pass the supernets' ``arch_parameters`` / ``weight_parameters`` through). The uncertainty the QC
sees is always ``search.train.seg_outputs.probs_and_uncertainty``'s normalised entropy, the one the
exported segmentation model computes in its graph.

A supernet wrapper's ``weighting`` (None: the supernet's own default, the softmax mixture) is what its
forward passes hand the supernet; the joint search sets it to a single-path sampler
(``ArchWeighting.gdas``) with ``SearchConfig.sampler == "gdas"``.
"""

from __future__ import annotations

import torch
from torch import nn

from search.core.mixed import ArchWeighting


class SegLogits(nn.Module):
    """A segmentation network reduced to its logits. ``(N, 3, H, W) -> (N, 2, H, W)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.weighting: ArchWeighting | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.net(images) if self.weighting is None else self.net(images, self.weighting)
        return out[0] if isinstance(out, (tuple, list)) else out

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.net.arch_parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.weight_parameters())


class QcOnParts(nn.Module):
    """A QC network that takes one concatenated tensor, fed the three parts.

    ``(image (N, 3, H, W), probs (N, 2, H, W), uncertainty (N, 1, H, W)) -> predicted Dice (N,)``.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.weighting: ArchWeighting | None = None

    def forward(self, image: torch.Tensor, probs: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, probs, uncertainty], dim=1)
        return (self.net(x) if self.weighting is None else self.net(x, self.weighting)).reshape(-1)

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.net.arch_parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.weight_parameters())


class QcFlat(nn.Module):
    """A three-input QC network with its output flattened to ``(N,)`` (the baselines give ``(N, 1)``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, probs: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        return self.net(image, probs, uncertainty).reshape(-1)
