"""segqc-hw segmentation supernet: a NAS-Unet-style U of searchable Down and Up cells.

Layout (scale s = resolution / 2^s, channels ``C_s = init_filters * 2^s``)::

    stem (stem_convs 3x3 convs, scale 0, C_0; the paper: 1)
    Down cell d = 0..D-1 : scale d -> d+1 ; inputs (prev-prev, prev)
    Up cell   u = 0..D-1 : scale D-u -> D-u-1 ; inputs (prev-prev, prev, skip)
    seg_head             : logits (N, K, H, W) and entropy uncertainty (N, 1, H, W)

Cell inputs are the outputs of the two previous cells (DARTS); the prev-prev input is aligned to the
prev input's scale and channels by fixed preprocessing (``supernets.base.align``). Down-cell input
edges use the ``segqc_down`` set (stride 2); Up-cell edges from prev-prev and prev use ``segqc_up``
(x2). The Up cell's skip comes from the Down path at the Up cell's *output* scale, so its edges use
the ``segqc_normal`` set (a scaling op would miss the resolution); this is our reading of "an Up
cell also receives the skip". Edges between intermediate nodes use ``segqc_normal``. Cell output =
sum of its M intermediate nodes. One Down and one Up cell structure (alpha) is shared by all cells.

Droppable inputs (``NasUnetConfig.droppable_inputs``, off in the paper's space): the input edges of
both cell types may also be ``zero``, so a derived cell may read only its previous cell (an Up cell
also its skip), and the fixed alignment of an input no kept edge reads is not built. The paper's
space always reads both previous cells through scaling ops, so no plain U-net is a point of it;
with droppable inputs, 2 nodes and 8 initial filters a residual U-net(8) is (``unet_like_genotype``):
a Down cell ``n0 = down_conv(prev)``, ``n1 = conv(n0)``, out ``n0 + n1``; an Up cell
``n0 = up_conv(prev) + identity(skip)``, ``n1 = conv(n0)``, out ``n0 + n1``.

That space also holds degenerate networks: an Up cell that reads only its skip leaves the whole lower
U dead (the first hardware-aware search in it found one: stem + 1x1 head, Dice .14). ``keep_prev``
keeps the previous cell's edges non-droppable (only the prev-prev input may be dropped): every node
reads the level below (Down) or above (Up), as a U-net does; its U-net point has one more scaling
edge per second node (``unet_like_genotype(keep_prev=True)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from search.core.cells import Cell, CellArch, CellSpec
from search.core.genotypes import CellEdge, CellGenotype, NasUnetGenotype
from search.core.mixed import SOFTMAX, ArchWeighting
from search.core.ops import build_op
from search.core.supernets.base import Supernet, align, check_divisible, make_generator

DOWN_SPEC = CellSpec(2, ("segqc_down", "segqc_down"), "segqc_normal", output="sum")
UP_SPEC = CellSpec(3, ("segqc_up", "segqc_up", "segqc_normal"), "segqc_normal", output="sum")


def cell_specs(n_nodes: int = 3, droppable_inputs: bool = False, keep_prev: bool = False) -> tuple[CellSpec, CellSpec]:
    """The Down and Up cell specs of the space: ``DOWN_SPEC`` / ``UP_SPEC`` with ``n_nodes`` nodes, their
    scaling input edges also offering ``zero`` when ``droppable_inputs`` (the Up cell's skip edge already does),
    those of the previous cell (input 1) not when ``keep_prev``."""
    down = dataclasses.replace(DOWN_SPEC, n_nodes=n_nodes)
    up = dataclasses.replace(UP_SPEC, n_nodes=n_nodes)
    if droppable_inputs:
        prev_down, prev_up = ("segqc_down", "segqc_up") if keep_prev else ("segqc_down_or_zero", "segqc_up_or_zero")
        down = dataclasses.replace(down, input_op_sets=("segqc_down_or_zero", prev_down))
        up = dataclasses.replace(up, input_op_sets=("segqc_up_or_zero", prev_up, "segqc_normal"))
    return down, up


def unet_like_genotype(keep_prev: bool = False) -> NasUnetGenotype:
    """The residual U-net of the droppable-inputs space with 2 nodes (see the module docstring): each cell reads
    only its previous cell (inputs: 0 prev-prev, 1 prev, 2 skip; nodes 2 and 3 in the Down cell, 3 and 4 in
    the Up cell), a stride-2 conv down, a transposed conv up, an additive skip, one more conv per cell. With
    ``keep_prev`` the second node also reads the previous cell (a second stride-2 / transposed conv beside it)."""
    down = [CellEdge(1, 2, "down_conv"), CellEdge(2, 3, "conv")]
    up = [CellEdge(1, 3, "up_conv"), CellEdge(2, 3, "identity"), CellEdge(3, 4, "conv")]
    if keep_prev:
        down.insert(1, CellEdge(1, 3, "down_conv"))
        up.insert(2, CellEdge(1, 4, "up_conv"))
    return NasUnetGenotype(CellGenotype(2, 2, tuple(down), "sum"), CellGenotype(3, 2, tuple(up), "sum"))


@dataclass(frozen=True)
class NasUnetConfig:
    """Shape of the U (search and derived networks share it).

    Attributes:
        in_channels: Image channels (3: RGB contrast echo).
        num_classes: Segmentation classes incl. background (2: myocardium).
        init_filters: C_0 (4 in segqc-hw).
        depth: D, the number of Down (and of Up) cells; H, W must be divisible by 2^D.
        n_nodes: M intermediate nodes per cell.
        dims: 2 (echo frames) or 3.
        relaxation: Cell relaxation (``"op"`` for NAS-Unet; see ``cells.RELAXATIONS``).
        droppable_inputs: Cell input edges may also be ``zero`` (``cell_specs``); the supernet's
            alphas then hold the extra candidate (derived networks need nothing: a genotype says
            which inputs it reads).
        keep_prev: With ``droppable_inputs``, the previous cell's edges stay non-droppable (``cell_specs``).
        stem_convs: 3x3 conv-BN-ReLU layers of the stem (``build_stem``), all at scale 0.
    """

    in_channels: int = 3
    num_classes: int = 2
    init_filters: int = 4
    depth: int = 4
    n_nodes: int = 3
    dims: int = 2
    relaxation: str = "op"
    droppable_inputs: bool = False
    keep_prev: bool = False
    stem_convs: int = 1

    def channels(self, scale: int) -> int:
        return self.init_filters * 2**scale


def build_stem(cfg: NasUnetConfig) -> nn.Module:
    """The stem: one ``stem`` conv to ``C_0`` (the op itself, as the paper's space and every network built before the
    option had it), or with ``stem_convs`` > 1 a sequence of it and ``conv`` ops at ``C_0``, as a U-net's first level."""
    stem = build_op("stem", cfg.dims, cfg.in_channels, cfg.channels(0))
    if cfg.stem_convs == 1:
        return stem
    return nn.Sequential(stem, *(build_op("conv", cfg.dims, cfg.channels(0), cfg.channels(0))
                                 for _ in range(cfg.stem_convs - 1)))


def unet_plan(depth: int) -> list[tuple[str, int, int, int, int | None]]:
    """The cell sequence of the U, as ``(kind, in_scale, out_scale, prev_prev_index, skip_index)``.

    Feature indices: 0 is the stem, ``i + 1`` is the output of cell i. ``skip_index`` is None for Down
    cells. Shared by the supernet and the derived network so both wire identically.
    """
    plan: list[tuple[str, int, int, int, int | None]] = []
    scales = [0]  # scale of each feature
    for d in range(depth):
        plan.append(("down", d, d + 1, max(len(scales) - 2, 0), None))
        scales.append(d + 1)
    for u in range(depth):
        out = depth - u - 1
        skip = max(i for i, s in enumerate(scales[: depth + 1]) if s == out)  # Down-path feature at `out`
        plan.append(("up", depth - u, out, len(scales) - 2, skip))
        scales.append(out)
    return plan


def feature_scales(depth: int) -> list[int]:
    """Scale of each feature (0 = stem, i + 1 = cell i) for :func:`unet_plan`."""
    return [0] + [p[2] for p in unet_plan(depth)]


class NasUnetSupernet(Supernet):
    """The segqc-hw segmentation supernet.

    Args:
        config: The U's shape.
        seed: Seeds the weight and arch-logit initialisation.
        device: Where the parameters live.

    Forward: ``x (N, in_channels, H, W)`` -> ``(logits (N, K, H, W), uncertainty (N, 1, H, W))``.
    """

    def __init__(self, config: NasUnetConfig = NasUnetConfig(), seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__()
        self.config = cfg = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = make_generator(seed)
            down_spec, up_spec = cell_specs(cfg.n_nodes, cfg.droppable_inputs, cfg.keep_prev)
            self.cell_arch = nn.ModuleDict(
                {"down": CellArch(down_spec, cfg.relaxation, gen), "up": CellArch(up_spec, cfg.relaxation, gen)}
            )
            self.stem = build_stem(cfg)
            scales = feature_scales(cfg.depth)
            cells = []
            for kind, s_in, s_out, pp, _skip in unet_plan(cfg.depth):
                c_in, c_out = cfg.channels(s_in), cfg.channels(s_out)
                pre = [align(cfg.dims, cfg.channels(scales[pp]), scales[pp], c_in, s_in), nn.Identity()]
                c_inputs = [c_in, c_in]
                if kind == "up":
                    pre.append(nn.Identity())
                    c_inputs.append(c_out)
                spec = down_spec if kind == "down" else up_spec
                cells.append(Cell(spec, cfg.dims, c_inputs, c_out, preprocess=pre, cell_type=kind))
            self.cells = nn.ModuleList(cells)
            self.head = build_op("seg_head", cfg.dims, cfg.channels(0), cfg.num_classes)
        self.to(device)

    def forward(self, x: torch.Tensor, weighting: ArchWeighting = SOFTMAX) -> tuple[torch.Tensor, torch.Tensor]:
        """``weighting`` turns the logits into edge weights, once per cell type (all cells of a type share the
        draw); a single-path weighting (``ArchWeighting.gdas``) runs one sampled op per edge."""
        check_divisible(tuple(x.shape[2:]), self.config.depth, "NasUnetSupernet input")
        weights = {kind: arch.edge_weights(weighting) for kind, arch in self.cell_arch.items()}
        feats = [self.stem(x)]
        for cell, (kind, _, _, pp, skip) in zip(self.cells, unet_plan(self.config.depth)):
            inputs = [feats[pp], feats[-1]] + ([feats[skip]] if kind == "up" else [])
            feats.append(cell(inputs, weights[kind], weighting.single_path))
        return self.head(feats[-1])
