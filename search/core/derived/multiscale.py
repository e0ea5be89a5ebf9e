"""The derived msnas-hw / rtdnas network: the selected paths of the layer x scale grid, fused.

The network is the union of the selected paths' grid edges, each edge computed once (paths that share
a prefix share its computation): vertex ``(l, s)`` = sum of its kept incoming edges (an ep / ns / ct
cell, or the identity for ``skip``). Every final-layer vertex reached by a path goes through its
``classifier`` and x2 upsamplings to full resolution, and the logits are summed ("fused").
"""

from __future__ import annotations

import torch
from torch import nn

from search.core.derived.cells import DerivedCell
from search.core.genotypes import STEP_DELTA, MultiscaleGenotype
from search.core.ops import build_op, make_causal
from search.core.supernets.base import check_divisible
from search.core.supernets.multiscale import MultiscaleConfig, cell_name, output_head, scaling_preprocess


def path_edges(genotype: MultiscaleGenotype) -> list[tuple[int, int, str]]:
    """Distinct grid edges ``(source layer, source scale, kind)`` used by the paths, in layer order."""
    edges = {
        (layer, scale, kind) for p in genotype.paths for layer, (scale, kind) in enumerate(zip(p.scales, p.kinds))
    }
    return sorted(edges)


class FusedMultiscaleNet(nn.Module):
    """n fused paths of discrete cells.

    Args:
        genotype: Cells and paths (``n_layers`` / ``n_scales`` must match ``config``).
        config: Channels, classes, dims, causal time (``relaxation`` and ``pc_k`` are ignored: full channels).
        seed: Seeds the weight initialisation.

    Forward: ``x (N, C_in, T, H, W)`` (or 2D) -> logits ``(N, K, T, H, W)``.
    """

    def __init__(self, genotype: MultiscaleGenotype, config: MultiscaleConfig = MultiscaleConfig(), seed: int = 0):
        super().__init__()
        if (genotype.n_layers, genotype.n_scales) != (config.n_layers, config.n_scales):
            raise ValueError(
                f"genotype grid {genotype.n_layers}x{genotype.n_scales} != config {config.n_layers}x{config.n_scales}"
            )
        self.genotype, self.config = genotype, config
        cfg = config
        self.edges = path_edges(genotype)
        self.final_scales = sorted({p.scales[-1] for p in genotype.paths})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.stem = build_op("stem", cfg.dims, cfg.in_channels, cfg.channels(0))
            cells = {}
            for layer, s, kind in self.edges:
                if kind == "skip":
                    continue
                c_dst = cfg.channels(s + STEP_DELTA[kind])
                pre = [scaling_preprocess(cfg.dims, kind, cfg.channels(s), c_dst)]
                cells[cell_name(layer, s, kind)] = DerivedCell(genotype.cells[kind], cfg.dims, [c_dst], c_dst, pre)
            self.cells = nn.ModuleDict(cells)
            self.heads = nn.ModuleDict(
                {str(s): output_head(cfg.dims, cfg.channels(s), cfg.num_classes, s) for s in self.final_scales}
            )
        if cfg.causal:
            make_causal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(tuple(x.shape[2:]), self.config.n_scales - 1, "FusedMultiscaleNet input")
        states: dict[tuple[int, int], torch.Tensor] = {(0, 0): self.stem(x)}
        for layer, s, kind in self.edges:
            h = states[(layer, s)]
            out = h if kind == "skip" else self.cells[cell_name(layer, s, kind)]([h])
            dst = (layer + 1, s + STEP_DELTA[kind])
            states[dst] = out if dst not in states else states[dst] + out
        outs = [self.heads[str(s)](states[(self.config.n_layers, s)]) for s in self.final_scales]
        return sum(outs[1:], outs[0])
