"""A two-candidate 3D supernet and its clip loaders: the smallest thing a bilevel search can run on.

Shared by the msnas-hw search-loop tests and the first-order step tests (rtdnas).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinySupernet(nn.Module):
    """A 3D conv whose two candidate kernels are mixed by softmax(alpha); latency = w . [10, 1] ms."""

    def __init__(self):
        super().__init__()
        self.ops = nn.ModuleList([nn.Conv3d(1, 4, 3, padding=1), nn.Conv3d(1, 4, 1)])
        self.alpha = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        w = torch.softmax(self.alpha, 0)
        return w[0] * self.ops[0](x) + w[1] * self.ops[1](x)

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return list(self.ops.parameters())

    def latency(self, generator=None):
        """Expected latency in ms (msnas-hw's search passes its generator; rtdnas's passes nothing)."""
        return (torch.softmax(self.alpha, 0) * torch.tensor([10.0, 1.0])).sum()


def tiny_loader(seed: int) -> DataLoader:
    """Four random (1, 2, 8, 8) clips with 4-class labels, batches of 2, shuffled by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 1, 2, 8, 8, generator=g)
    y = torch.randint(0, 4, (4, 2, 8, 8), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(seed))
