"""The derived segqc-hw QC net: ResNet-like blocks of discrete cells, regressing Dice (ONNX-exportable)."""

from __future__ import annotations

import torch
from torch import nn

from search.core.derived.cells import DerivedCell
from search.core.genotypes import QcGenotype
from search.core.ops import build_op
from search.core.supernets.base import check_divisible
from search.core.supernets.qcnet import QcNetConfig


class DerivedQcBlock(nn.Module):
    """Discrete cell + residual path. ``(N, c_in, *S) -> (N, c_out, *S')``."""

    def __init__(self, cell: DerivedCell, residual: nn.Module):
        super().__init__()
        self.cell, self.residual = cell, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cell([x]) + self.residual(x)


class DerivedQcNet(nn.Module):
    """Same layout as :class:`~search.core.supernets.qcnet.QcSupernet`.

    Forward: ``x (N, config.in_channels, H, W)`` (``qcnet.qc_input``) -> predicted Dice ``(N,)``.
    """

    def __init__(self, genotype: QcGenotype, config: QcNetConfig = QcNetConfig(), seed: int = 0):
        super().__init__()
        self.genotype, self.config = genotype, config
        cfg = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.stem = build_op("stem", cfg.dims, cfg.in_channels, cfg.init_filters)
            blocks = []
            for kind, c_in, c_out in cfg.block_plan():
                cell_g = genotype.contracting if kind == "contracting" else genotype.nonscaling
                residual = build_op("proj1x1", cfg.dims, c_in, c_out, stride=2) if kind == "contracting" else nn.Identity()
                blocks.append(DerivedQcBlock(DerivedCell(cell_g, cfg.dims, [c_in], c_out), residual))
            self.blocks = nn.Sequential(*blocks)
            self.head = build_op("qc_head", cfg.dims, cfg.block_plan()[-1][2], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(tuple(x.shape[2:]), self.config.n_stages, "DerivedQcNet input")
        return self.head(self.blocks(self.stem(x)))


class DerivedSegQc(nn.Module):
    """The deployed framework in one graph: seg net then QC net on (image, probabilities, uncertainty).

    Forward: ``image (N, C, H, W)`` -> ``(logits (N, K, H, W), uncertainty (N, 1, H, W), dice (N,))``.
    """

    def __init__(self, seg: nn.Module, qc: nn.Module):
        super().__init__()
        self.seg, self.qc = seg, qc

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, uncertainty = self.seg(image)
        probs = torch.softmax(logits, dim=1)
        return logits, uncertainty, self.qc(torch.cat([image, probs, uncertainty], dim=1))
