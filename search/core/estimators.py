"""Differentiable latency estimators (ms), built from a supernet and a latency table.

Each estimator traces its supernet once (:func:`~search.core.latency_sites.trace_sites`) to learn the
table key of every candidate on every edge of every cell instance and of every fixed op, looks the keys
up once (a missing key raises ``MissingLatencyKey`` naming it), and then, on each call, combines the
looked-up milliseconds with the *current* architecture weights, so the result has gradients w.r.t.
alpha / gamma / beta. ``zero`` costs 0 ms; a ``skip`` grid edge (identity) costs 0 ms.

- :class:`AdditiveLatency` (segqc-hw eq. 4, FBNet): ``sum_cells sum_edges sum_k w_ek * LUT_ek`` + the
  fixed ops (stem, preprocessing, residual projections, heads). With the Gumbel weighting,
  ``w = GS(alpha)``. ``inputs_by_use``: the preprocessing of a cell input whose every edge may be
  ``zero`` is charged by the probability that some edge reads it, ``1 - prod_e w_e[zero]`` (a derived
  cell builds it only then), not always.
- :class:`PathwiseLatency` (msnas-hw eq. 7-9): mixed op ``sum_k w_k F(OP_k)``; cell = preprocessing +
  ``sum_e w_e . LUT_e`` (``w_e = GS(gamma)_e GS(alpha_e)``); path = ``sum_l GS(beta)_l E[cell_l]`` +
  the path's output head; network = stem + the sum over the top-n paths (chosen by DP on the current,
  detached beta probabilities).
- :class:`PathProbabilityLatency` (rtdnas eq. 3-5): cell = its fixed ops (scaling op + 1x1 convs) +
  the longest path through the cell DAG of expected edge latencies; network =
  ``sum_cells P(cell on a sampled path) * cell`` + stem + ``sum_s P(final vertex s) * head_s``, the
  probabilities propagated forward from (0, 0) through the beta softmaxes.

:func:`predict_latency` gives the table's plain-sum prediction for a discrete (derived) network.

The table is any :class:`~search.core.keys.LatencyLookup` (``search.latency.lut.LatencyTable`` in
practice); the core does not import ``search.latency``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from search.core.cells import Cell, CellSpec
from search.core.decode import top_n_paths
from search.core.genotypes import STEP_DELTA, STEP_KINDS
from search.core.latency_sites import CellSite, NetworkSites, trace_sites
from search.core.mixed import SOFTMAX, ArchWeighting
from search.core.supernets.base import Supernet
from search.core.supernets.multiscale import MultiscaleSupernet, cell_name, kind_available
from search.core.keys import LatencyLookup
from search.core.keys import OpKey


def _ms(keys: Sequence[OpKey], table: LatencyLookup) -> float:
    return float(sum(table.get(k) for k in keys))


class CellLatency:
    """Looked-up latencies of one cell instance.

    Attributes:
        spec: The cell type's spec.
        cell_type: Key into the supernet's ``cell_arch``.
        fixed_ms: Preprocessing + output fuse (ms); without the droppable inputs' preprocessing when
            ``inputs_by_use``.
        input_ms: ``inputs_by_use`` only: droppable input -> ``(ms of its preprocessing, [(edge, index of
            zero)] of the edges leaving it)``.
        edge_luts: Per edge, ``(K_e,)`` ms of each candidate (0 for ``zero``).
    """

    def __init__(self, cell: Cell, site: CellSite, table: LatencyLookup, device: torch.device,
                 inputs_by_use: bool = False):
        self.spec: CellSpec = cell.spec
        self.cell_type = cell.cell_type
        self.input_ms: dict[int, tuple[float, list[tuple[int, int]]]] = {}
        fixed = list(site.fixed_keys)
        if inputs_by_use:
            for i, keys in site.input_keys.items():
                leaving = [e for e, (src, _, _) in enumerate(self.spec.edges) if src == i]
                if keys and leaving and all("zero" in self.spec.edge_ops(e) for e in leaving):
                    self.input_ms[i] = (_ms(keys, table), [(e, self.spec.edge_ops(e).index("zero")) for e in leaving])
                    for k in keys:  # charged by use instead
                        fixed.remove(k)
        self.fixed_ms = _ms(fixed, table)
        self.edge_luts: list[torch.Tensor] = []
        for e, keys in enumerate(site.edge_keys):
            if keys is None:
                raise ValueError(f"{site.name}: edge {e} was never run while tracing; cannot estimate it")
            ms = [0.0 if k is None else table.get(k) for k in keys]
            self.edge_luts.append(torch.tensor(ms, dtype=torch.float32, device=device))

    def expected_edges(self, weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Expected latency of every edge, ``sum_k w_ek LUT_ek`` (scalars)."""
        return [(w * lut).sum() for w, lut in zip(weights, self.edge_luts)]

    def read_probability(self, i: int, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """``1 - prod_e w_e[zero]`` over the edges leaving droppable input ``i``: the chance some edge reads it."""
        _, zeros = self.input_ms[i]
        return 1 - torch.stack([weights[e][z] for e, z in zeros]).prod()

    def additive(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """``fixed + sum_e sum_k w_ek LUT_ek`` (msnas eq. 8, segqc eq. 4), plus each droppable input's
        preprocessing times its read probability. Scalar tensor, ms."""
        total = self.fixed_ms + torch.stack(self.expected_edges(weights)).sum()
        for i, (ms, _) in self.input_ms.items():
            total = total + ms * self.read_probability(i, weights)
        return total

    def longest_path(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """``fixed + max over nodes of the longest input-to-node path`` of expected edge latencies (rtdnas).

        The cell output reads every intermediate node, so the critical path ends at the latest node.
        The max is a subgradient: the gradient flows along the current critical path.
        """
        edge_ms = self.expected_edges(weights)
        spec = self.spec
        dist: dict[int, torch.Tensor] = {i: edge_ms[0].new_zeros(()) for i in range(spec.n_inputs)}
        for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
            dist[dst] = torch.stack([dist[spec.edges[e][0]] + edge_ms[e] for e in spec.incoming(dst)]).max()
        nodes = torch.stack([dist[j] for j in range(spec.n_inputs, spec.n_inputs + spec.n_nodes)])
        return self.fixed_ms + nodes.max()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _cell_latencies(model: Supernet, sites: NetworkSites, table: LatencyLookup,
                    inputs_by_use: bool = False) -> dict[str, CellLatency]:
    cells = {name: m for name, m in model.named_modules() if isinstance(m, Cell)}
    return {name: CellLatency(cells[name], site, table, _device(model), inputs_by_use)
            for name, site in sites.cells.items()}


class AdditiveLatency:
    """segqc-hw expected latency of one or more supernets (e.g. seg + QC): FBNet additive form.

    Args:
        networks: ``(supernet, input_shape)`` pairs; ``input_shape`` without the batch axis, e.g.
            ``(3, 256, 256)`` for the seg net and ``(6, 256, 256)`` for the QC net.
        table: The latency table.
        inputs_by_use: Charge a droppable cell input's preprocessing by the probability that some edge
            reads it (see the module docstring); off: always (the paper's spaces have no droppable input
            with preprocessing, so both give the same there).

    Call: ``weighting`` (use ``ArchWeighting.gumbel(seed)`` for ``GS(alpha)``) -> scalar tensor, ms.
    """

    def __init__(self, networks: Sequence[tuple[Supernet, Sequence[int]]], table: LatencyLookup,
                 inputs_by_use: bool = False):
        self.parts = []
        for model, shape in networks:
            sites = trace_sites(model, shape)
            self.parts.append((model, _ms(sites.outside_keys, table), _cell_latencies(model, sites, table, inputs_by_use)))

    def __call__(self, weighting: ArchWeighting = SOFTMAX) -> torch.Tensor:
        total = None
        for model, fixed_ms, cells in self.parts:
            weights = {kind: arch.edge_weights(weighting) for kind, arch in model.cell_arch.items()}
            part = fixed_ms + torch.stack([c.additive(weights[c.cell_type]) for c in cells.values()]).sum()
            total = part if total is None else total + part
        return total


class _MultiscaleLatency:
    """Shared lookups of the multi-scale estimators."""

    def __init__(self, model: MultiscaleSupernet, table: LatencyLookup, input_shape: Sequence[int]):
        self.model = model
        sites = trace_sites(model, input_shape)
        by_name = _cell_latencies(model, sites, table)
        self.cells = {name.removeprefix("cells."): lat for name, lat in by_name.items()}
        self.stem_ms = _ms(sites.outside_under("stem"), table)
        n_final = len(model.heads)
        self.head_ms = [_ms(sites.outside_under(f"heads.{s}"), table) for s in range(n_final)]

    def _cell_ms(self, weighting: ArchWeighting, form: str):
        weights = {kind: arch.edge_weights(weighting) for kind, arch in self.model.cell_arch.items()}
        if form == "additive":
            return {name: lat.additive(weights[lat.cell_type]) for name, lat in self.cells.items()}
        return {name: lat.longest_path(weights[lat.cell_type]) for name, lat in self.cells.items()}


class PathwiseLatency(_MultiscaleLatency):
    """msnas-hw path-wise top-n expected latency (eq. 7-9).

    Args:
        model: The multi-scale supernet.
        table: The latency table.
        input_shape: ``(C, T, H, W)`` (or ``(C, H, W)``), no batch axis.
        n_paths: n, the number of fused paths the derived network will have.

    Call: ``weighting`` -> scalar tensor, ms. The top-n paths are re-selected on every call from the
    current beta (detached): selection is discrete; the gradient flows through the weights of the
    selected paths' edges and through their cells' alpha / gamma.
    """

    def __init__(self, model: MultiscaleSupernet, table: LatencyLookup, input_shape: Sequence[int], n_paths: int):
        super().__init__(model, table, input_shape)
        self.n_paths = n_paths

    def __call__(self, weighting: ArchWeighting = SOFTMAX) -> torch.Tensor:
        cell_ms = self._cell_ms(weighting, "additive")
        p = self.model.beta_probs(weighting)
        with torch.no_grad():
            paths = top_n_paths(self.model.beta_probs().detach().cpu().numpy(), self.n_paths)
        total = p.new_tensor(self.stem_ms)
        for path, _ in paths:
            for layer, (s, kind) in enumerate(zip(path.scales, path.kinds)):
                if kind != "skip":
                    total = total + p[layer, s, STEP_KINDS.index(kind)] * cell_ms[cell_name(layer, s, kind)]
            total = total + self.head_ms[path.scales[-1]]
        return total


class PathProbabilityLatency(_MultiscaleLatency):
    """rtdnas expected network latency ``L_t`` (eq. 3-5).

    Args:
        model: The multi-scale supernet (``input_op_pair`` relaxation in rtdnas, any works).
        table: The latency table.
        input_shape: ``(C, T, H, W)`` (or ``(C, H, W)``), no batch axis.

    Call: ``weighting`` -> scalar tensor, ms.
    """

    def __call__(self, weighting: ArchWeighting = SOFTMAX) -> torch.Tensor:
        cfg = self.model.config
        cell_ms = self._cell_ms(weighting, "longest_path")
        p = self.model.beta_probs(weighting)
        total = p.new_tensor(self.stem_ms)
        reach = {0: p.new_ones(())}  # P(vertex (layer, s) lies on a sampled path)
        for layer in range(cfg.n_layers):
            nxt: dict[int, torch.Tensor] = {}
            for s, prob in reach.items():
                for k, kind in enumerate(STEP_KINDS):
                    if not kind_available(kind, s, cfg.n_scales):
                        continue
                    q = prob * p[layer, s, k]  # k_c^l: the cell on this grid edge is on the path
                    if kind != "skip":
                        total = total + q * cell_ms[cell_name(layer, s, kind)]
                    dst = s + STEP_DELTA[kind]
                    nxt[dst] = q if dst not in nxt else nxt[dst] + q
            reach = nxt
        for s, prob in reach.items():
            total = total + prob * self.head_ms[s]
        return total


def predict_latency(model: nn.Module, input_shape: Sequence[int], table: LatencyLookup) -> float:
    """The table's plain-sum prediction (ms) for a discrete network: every op it runs, each counted once
    per module (an op used twice in the network is counted twice).

    Args:
        model: A derived network (or any module built from CandidateOps).
        input_shape: Input shape without the batch axis.
        table: The latency table.
    """
    sites = trace_sites(model, input_shape)
    if sites.cells:
        raise ValueError("predict_latency is for discrete networks; use an estimator for a supernet")
    return _ms(sites.outside_keys, table)


# Random discrete architectures live in search.core.sampling; re-exported here for the latency check.
from search.core.sampling import sample_random_genotype  # noqa: E402  (re-export)

__all__ = [
    "AdditiveLatency",
    "CellLatency",
    "PathProbabilityLatency",
    "PathwiseLatency",
    "predict_latency",
    "sample_random_genotype",
]
