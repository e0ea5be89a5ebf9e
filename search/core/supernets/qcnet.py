"""segqc-hw quality-control supernet: ResNet-like searchable cells regressing the segmentation's Dice.

Layout::

    input = concat(image, seg probabilities, uncertainty)   (N, C_img + K + 1, H, W)
    stem (3x3 conv -> init_filters)
    n_stages x [Contracting cell (stride 2, channels x2) ; Non-scaling cell]
    qc_head: global average pool -> linear -> sigmoid       (N,) predicted Dice

Each cell takes only the previous block's output and adds a residual path: identity for a
Non-scaling cell, a 1x1 strided projection (``proj1x1``, conv-BN) for a Contracting cell. Contracting
cell input edges use the ``segqc_down`` set, Non-scaling input edges and all inner edges the
``segqc_normal`` set. Cell output = sum of the intermediate nodes (as the seg cells).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from search.core.cells import Cell, CellArch, CellSpec
from search.core.mixed import SOFTMAX, ArchWeighting
from search.core.ops import build_op
from search.core.supernets.base import Supernet, check_divisible, make_generator

CONTRACTING_SPEC = CellSpec(1, ("segqc_down",), "segqc_normal", output="sum")
NONSCALING_SPEC = CellSpec(1, ("segqc_normal",), "segqc_normal", output="sum")


@dataclass(frozen=True)
class QcNetConfig:
    """Shape of the QC net.

    Attributes:
        image_channels: Channels of the image part of the input (3: RGB).
        num_classes: Channels of the segmentation probabilities part.
        init_filters: Stem channels (8 in segqc-hw).
        n_stages: Contracting + Non-scaling pairs; H, W must be divisible by 2^n_stages.
        n_nodes: M.
        dims: 2 or 3.
        relaxation: Cell relaxation.
    """

    image_channels: int = 3
    num_classes: int = 2
    init_filters: int = 8
    n_stages: int = 4
    n_nodes: int = 3
    dims: int = 2
    relaxation: str = "op"

    @property
    def in_channels(self) -> int:
        """image + class probabilities + 1 uncertainty channel."""
        return self.image_channels + self.num_classes + 1

    def block_plan(self) -> list[tuple[str, int, int]]:
        """``(cell_type, c_in, c_out)`` per block, in order."""
        plan, c = [], self.init_filters
        for _ in range(self.n_stages):
            plan += [("contracting", c, 2 * c), ("nonscaling", 2 * c, 2 * c)]
            c *= 2
        return plan


def qc_input(image: torch.Tensor, seg_logits: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
    """The QC net's input: ``concat(image (N,C,*S), softmax(seg_logits) (N,K,*S), uncertainty (N,1,*S))``."""
    return torch.cat([image, torch.softmax(seg_logits, dim=1), uncertainty], dim=1)


class QcBlock(nn.Module):
    """A searchable cell plus its residual path. ``(N, c_in, *S) -> (N, c_out, *S')``."""

    def __init__(self, cell: Cell, residual: nn.Module):
        super().__init__()
        self.cell, self.residual = cell, residual

    def forward(self, x: torch.Tensor, weights, single_path: bool = False) -> torch.Tensor:
        return self.cell([x], weights, single_path) + self.residual(x)


class QcSupernet(Supernet):
    """The segqc-hw QC supernet.

    Args:
        config: Shape.
        seed: Seeds weight and arch-logit initialisation.
        device: Where the parameters live.

    Forward: ``x (N, config.in_channels, H, W)`` (see :func:`qc_input`) -> predicted Dice ``(N,)``.
    """

    def __init__(self, config: QcNetConfig = QcNetConfig(), seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__()
        self.config = cfg = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = make_generator(seed)
            specs = {
                "contracting": dataclasses.replace(CONTRACTING_SPEC, n_nodes=cfg.n_nodes),
                "nonscaling": dataclasses.replace(NONSCALING_SPEC, n_nodes=cfg.n_nodes),
            }
            self.cell_arch = nn.ModuleDict({k: CellArch(s, cfg.relaxation, gen) for k, s in specs.items()})
            self.stem = build_op("stem", cfg.dims, cfg.in_channels, cfg.init_filters)
            blocks = []
            for kind, c_in, c_out in cfg.block_plan():
                cell = Cell(specs[kind], cfg.dims, [c_in], c_out, cell_type=kind)
                residual = build_op("proj1x1", cfg.dims, c_in, c_out, stride=2) if kind == "contracting" else nn.Identity()
                blocks.append(QcBlock(cell, residual))
            self.blocks = nn.ModuleList(blocks)
            self.head = build_op("qc_head", cfg.dims, cfg.block_plan()[-1][2], 1)
        self.to(device)

    def forward(self, x: torch.Tensor, weighting: ArchWeighting = SOFTMAX) -> torch.Tensor:
        """``weighting`` as in ``NasUnetSupernet.forward`` (single-path weightings run one op per edge)."""
        check_divisible(tuple(x.shape[2:]), self.config.n_stages, "QcSupernet input")
        weights = {kind: arch.edge_weights(weighting) for kind, arch in self.cell_arch.items()}
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, weights[block.cell.cell_type], weighting.single_path)
        return self.head(h)
