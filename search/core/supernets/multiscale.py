"""msnas-hw / rtdnas multi-scale supernet: L layers x S scales of shared Ep / Ns / Ct cells.

Grid (scale s = resolution / 2^s in H and W, channels ``C_s = base_channels * 2^s``; in 3D, T is
kept at every scale)::

    X_0^0 = stem(x)                                   (the only vertex of layer 0)
    X_s^l = sum over edges e = (l-1, s') -> (l, s):  p(beta_e) * f_e(X_{s'}^{l-1})            (eq. 5)

Edges leaving vertex ``(l-1, s')``, in :data:`~search.core.genotypes.STEP_KINDS` order:
``ep`` (expanding cell, to s'-1, needs s' > 0), ``ns`` (non-scaling cell, to s'), ``ct``
(contracting cell, to s'+1, needs s'+1 < S), ``skip`` (identity, to s'). ``p(beta)`` is a softmax over
the edges **leaving** a vertex (missing kinds are masked out). Vertex ``(l, s)`` exists iff ``s <= l``.

Cells: one structure (alpha / gamma) per cell type, shared across the grid; each grid edge has its
own cell weights. Preprocessing = the scaling op (``upsample`` for ep, ``pool2x`` for ct, none for ns)
then a ``conv1x1`` to the target channels (as the paper states the order). M intermediate nodes,
concat output + 1x1 conv. Partial channels (k = ``pc_k``) on the cell edges.

Output: every final-layer vertex goes through a ``classifier`` (1x1 conv to K classes) and x2
``upsample`` ops back to full resolution; the logits are summed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from search.core.cells import Cell, CellArch, CellSpec
from search.core.genotypes import MULTISCALE_CELL_TYPES, STEP_DELTA, STEP_KINDS
from search.core.mixed import SOFTMAX, ArchWeighting
from search.core.ops import FREE_OPS, build_op, make_causal
from search.core.supernets.base import Supernet, check_divisible, make_generator

MULTISCALE_SPEC = CellSpec(1, ("msnas",), "msnas", n_nodes=3, output="concat")


@dataclass(frozen=True)
class MultiscaleConfig:
    """Shape of the layer x scale network.

    Attributes:
        in_channels: Image channels (1: cine MR).
        num_classes: K (4: background, RV, MYO, LV).
        base_channels: C_0.
        n_layers: L (8 for msnas-hw, 10 for rtdnas).
        n_scales: S (4); H, W must be divisible by 2^(S-1).
        n_nodes: M.
        dims: 3 (T x H x W clips) or 2.
        relaxation: ``"edge_op"`` (MS-NAS) or ``"input_op_pair"`` (RT-DNAS).
        pc_k: Partial-channel factor (4 in both papers; 1 = off).
        causal: Causal time (3D): every op that spans time pads only the past, so the output at
            frame t depends on frames <= t and the network can run streaming, one frame at a time
            (``search.core.ops.make_causal``, ``search.export.streaming``). Off: symmetric padding.
    """

    in_channels: int = 1
    num_classes: int = 4
    base_channels: int = 8
    n_layers: int = 8
    n_scales: int = 4
    n_nodes: int = 3
    dims: int = 3
    relaxation: str = "edge_op"
    pc_k: int = 4
    causal: bool = False

    def channels(self, scale: int) -> int:
        return self.base_channels * 2**scale


def kind_available(kind: str, scale: int, n_scales: int) -> bool:
    """Whether an edge of ``kind`` leaves a vertex at ``scale``."""
    return 0 <= scale + STEP_DELTA[kind] < n_scales


def grid_edges(n_layers: int, n_scales: int) -> list[tuple[int, int, str]]:
    """Every edge of the grid as ``(source layer l, source scale s, kind)``, l in 0..L-1, s <= l."""
    return [
        (layer, s, kind)
        for layer in range(n_layers)
        for s in range(min(layer, n_scales - 1) + 1)
        for kind in STEP_KINDS
        if kind_available(kind, s, n_scales)
    ]


def beta_mask(n_layers: int, n_scales: int) -> torch.Tensor:
    """``(L, S, 4)`` bool: which kinds leave each vertex (by scale; unreachable vertices are unused)."""
    mask = torch.zeros((n_layers, n_scales, len(STEP_KINDS)), dtype=torch.bool)
    for s in range(n_scales):
        for k, kind in enumerate(STEP_KINDS):
            mask[:, s, k] = kind_available(kind, s, n_scales)
    return mask


def cell_name(layer: int, scale: int, kind: str) -> str:
    """Module key of the cell on the grid edge leaving ``(layer, scale)`` with ``kind``."""
    return f"l{layer}_s{scale}_{kind}"


def scaling_preprocess(dims: int, kind: str, c_src: int, c_dst: int) -> nn.Sequential:
    """Preprocessing of an ep / ns / ct cell: scaling op, then ``conv1x1``."""
    scaling = {"ep": [build_op("upsample", dims, c_src, c_src)], "ct": [build_op("pool2x", dims, c_src, c_src)]}
    return nn.Sequential(*scaling.get(kind, []), build_op("conv1x1", dims, c_src, c_dst))


def output_head(dims: int, c: int, num_classes: int, scale: int) -> nn.Sequential:
    """Classifier at ``scale`` then ``scale`` x2 upsamplings: ``(N, c, *S_s) -> (N, K, *S_0)``."""
    ups = [build_op("upsample", dims, num_classes, num_classes) for _ in range(scale)]
    return nn.Sequential(build_op("classifier", dims, c, num_classes), *ups)


class MultiscaleSupernet(Supernet):
    """The MS-NAS two-level supernet (cells + layer x scale network).

    Args:
        config: Shape and relaxation.
        seed: Seeds weight, alpha / gamma and beta initialisation.
        device: Where the parameters live.

    Parameters: ``cell_arch.{ep,ns,ct}`` (cell logits), ``beta (L, S, 4)`` network edge logits.

    Forward: ``x (N, C_in, T, H, W)`` (or ``(N, C_in, H, W)`` in 2D) -> logits ``(N, K, T, H, W)``.
    """

    def __init__(self, config: MultiscaleConfig = MultiscaleConfig(), seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__()
        self.config = cfg = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = make_generator(seed)
            spec = dataclasses.replace(MULTISCALE_SPEC, n_nodes=cfg.n_nodes)
            self.cell_arch = nn.ModuleDict({k: CellArch(spec, cfg.relaxation, gen) for k in MULTISCALE_CELL_TYPES})
            self.beta = nn.Parameter(1e-3 * torch.randn((cfg.n_layers, cfg.n_scales, len(STEP_KINDS)), generator=gen))
            self.register_buffer("beta_mask", beta_mask(cfg.n_layers, cfg.n_scales), persistent=False)
            self.stem = build_op("stem", cfg.dims, cfg.in_channels, cfg.channels(0))
            cells = {}
            for layer, s, kind in grid_edges(cfg.n_layers, cfg.n_scales):
                if kind == "skip":
                    continue
                c_src, c_dst = cfg.channels(s), cfg.channels(s + STEP_DELTA[kind])
                pre = [scaling_preprocess(cfg.dims, kind, c_src, c_dst)]
                cells[cell_name(layer, s, kind)] = Cell(spec, cfg.dims, [c_dst], c_dst, pre, cfg.pc_k, kind)
            self.cells = nn.ModuleDict(cells)
            final = range(min(cfg.n_layers, cfg.n_scales - 1) + 1)
            self.heads = nn.ModuleList(output_head(cfg.dims, cfg.channels(s), cfg.num_classes, s) for s in final)
        if cfg.causal:
            make_causal(self)
        # Dropout on the grid's skip edges (no cell, no weights) in training mode, set by a search
        # (``SearchConfig.skip_edge_dropout``): a converged search otherwise routes its paths through skips
        # (issue 16), the grid's own weight-free choice. 0: off.
        self.skip_edge_dropout = 0.0
        self.to(device)

    def beta_probs(self, weighting: ArchWeighting = SOFTMAX) -> torch.Tensor:
        """``(L, S, 4)`` probabilities of the edges leaving each vertex (0 where a kind is missing)."""
        logits = self.beta.masked_fill(~self.beta_mask, float("-inf"))
        return weighting(logits).masked_fill(~self.beta_mask, 0.0)

    def forward(self, x: torch.Tensor, weighting: ArchWeighting = SOFTMAX) -> torch.Tensor:
        cfg = self.config
        check_divisible(tuple(x.shape[2:]), cfg.n_scales - 1, "MultiscaleSupernet input")
        # Single path (GDAS) samples the cells' (input, op) pairs only, never ``zero`` (a zero node would also zero
        # the draw's gradient; the derivation never picks it); the layer x scale edges stay a softmax mixture, so
        # every vertex keeps its inputs and beta its exact gradient.
        exclude = FREE_OPS if weighting.single_path else frozenset()
        weights = {kind: arch.edge_weights(weighting, exclude) for kind, arch in self.cell_arch.items()}
        p = self.beta_probs(SOFTMAX if weighting.single_path else weighting)
        layer_states = {0: self.stem(x)}
        for layer in range(cfg.n_layers):
            nxt: dict[int, torch.Tensor] = {}
            for s, h in layer_states.items():
                for k, kind in enumerate(STEP_KINDS):
                    if not kind_available(kind, s, cfg.n_scales):
                        continue
                    if kind == "skip":
                        out = h
                        if self.training and self.skip_edge_dropout > 0:
                            out = nn.functional.dropout(h, self.skip_edge_dropout, training=True)
                    else:  # a single-path weighting (GDAS) runs one sampled pair per cell node
                        out = self.cells[cell_name(layer, s, kind)]([h], weights[kind], weighting.single_path)
                    dst = s + STEP_DELTA[kind]
                    term = p[layer, s, k] * out
                    nxt[dst] = term if dst not in nxt else nxt[dst] + term
            layer_states = nxt
        return sum(self.heads[s](h) for s, h in layer_states.items())
