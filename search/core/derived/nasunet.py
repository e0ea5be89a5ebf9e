"""The derived segqc-hw segmentation net: the NAS-Unet U rebuilt from a genotype (ONNX-exportable)."""

from __future__ import annotations

import torch
from torch import nn

from search.core.derived.cells import DerivedCell
from search.core.genotypes import NasUnetGenotype
from search.core.ops import build_op
from search.core.supernets.base import align, check_divisible
from search.core.supernets.nasunet import NasUnetConfig, build_stem, feature_scales, unet_plan


class DerivedNasUnet(nn.Module):
    """Same wiring as :class:`~search.core.supernets.nasunet.NasUnetSupernet`, one op per kept edge.

    Args:
        genotype: Down and Up cell structures.
        config: The U's shape (``relaxation`` is ignored).
        seed: Seeds the weight initialisation.

    Forward: ``image (N, in_channels, H, W)`` -> ``(logits (N, K, H, W), uncertainty (N, 1, H, W))``.
    """

    def __init__(self, genotype: NasUnetGenotype, config: NasUnetConfig = NasUnetConfig(), seed: int = 0):
        super().__init__()
        self.genotype, self.config = genotype, config
        cfg = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.stem = build_stem(cfg)
            scales = feature_scales(cfg.depth)
            cells = []
            for kind, s_in, s_out, pp, _ in unet_plan(cfg.depth):
                c_in, c_out = cfg.channels(s_in), cfg.channels(s_out)
                pre = [align(cfg.dims, cfg.channels(scales[pp]), scales[pp], c_in, s_in), nn.Identity()]
                c_inputs = [c_in, c_in]
                if kind == "up":
                    pre.append(nn.Identity())
                    c_inputs.append(c_out)
                cell_g = genotype.down if kind == "down" else genotype.up
                cells.append(DerivedCell(cell_g, cfg.dims, c_inputs, c_out, pre))
            self.cells = nn.ModuleList(cells)
            self.head = build_op("seg_head", cfg.dims, cfg.channels(0), cfg.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_divisible(tuple(x.shape[2:]), self.config.depth, "DerivedNasUnet input")
        feats = [self.stem(x)]
        for cell, (kind, _, _, pp, skip) in zip(self.cells, unet_plan(self.config.depth)):
            inputs = [feats[pp], feats[-1]] + ([feats[skip]] if kind == "up" else [])
            feats.append(cell(inputs))
        return self.head(feats[-1])
