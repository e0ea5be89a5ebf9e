"""The rtdnas search space on top of ``search.core`` (and the shared cine row table of ``search.train``).

- supernet: ``MultiscaleSupernet`` with 10 layers x 4 scales, ``input_op_pair`` cells (one joint
  softmax over (input, op) pairs per node, eq. 1), partial channels k = 4;
- latency ``L_t``: ``PathProbabilityLatency`` (eq. 3-5): cell = longest path through the cell DAG of
  expected edge latencies + its scaling op; network = sum over cells of the probability that the
  cell lies on a sampled path times its latency; softmax (not Gumbel) weights;
- decoding: cells by ``decode_cell_arch`` (one (input, op) pair per node: the argmax pair, zero
  excluded), paths by ``ga`` (top-weight or genetic);
- ``FusedLatencyModel``: the GA fitness (table latency of the fused network of any subset of pool paths).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence


from search.core.decode import decode_cell_arch
from search.core.derived.multiscale import FusedMultiscaleNet, path_edges
from search.core.estimators import PathProbabilityLatency
from search.core.genotypes import MULTISCALE_CELL_TYPES, MultiscaleGenotype, PathGenotype
from search.core.latency_sites import collect_latency_keys, trace_sites
from search.core.supernets.multiscale import MultiscaleConfig, MultiscaleSupernet, cell_name
from search.latency.keys import OpKey
from search.latency.lut import LatencyTable
from search.train.cine_config import CineRowsConfig, RowSpec, SearchRun
from search.methods.rtdnas.config import RtdnasConfig

N_CLASSES = 4
RELAXATION = "input_op_pair"


def multiscale_config(cfg: RtdnasConfig, channels: int) -> MultiscaleConfig:
    sn = cfg.supernet
    return MultiscaleConfig(in_channels=1, num_classes=N_CLASSES, base_channels=channels, n_layers=sn.layers,
                            n_scales=sn.scales, n_nodes=sn.nodes, dims=3, relaxation=RELAXATION, pc_k=sn.pc_k)


def build_supernet(cfg: RtdnasConfig, *, seed: int) -> MultiscaleSupernet:
    """The search supernet at the trained width: ``(N, 1, T, H, W) -> (N, 4, T, H, W)`` logits."""
    return MultiscaleSupernet(multiscale_config(cfg, cfg.trained_channels), seed=seed)


def latency_target_shape(cfg: RtdnasConfig) -> tuple[int, int, int, int]:
    """``(C, T, H, W)``: the deployed clip, where L_t and the GA fitness are estimated."""
    return (1, cfg.data.clip_length, cfg.data.height, cfg.data.width)


def required_keys(cfg: RtdnasConfig) -> list[OpKey]:
    return sorted(collect_latency_keys(build_supernet(cfg, seed=cfg.seed), latency_target_shape(cfg)))


def latency_estimator(cfg: RtdnasConfig, supernet: MultiscaleSupernet, table: LatencyTable) -> PathProbabilityLatency:
    """``L_t`` in ms (call with no argument: softmax weights; differentiable in the arch logits)."""
    return PathProbabilityLatency(supernet, table, latency_target_shape(cfg))


def decode_cells(supernet: MultiscaleSupernet, max_free_ops: int | None = None) -> dict[str, object]:
    """One (input, op) pair per node: the argmax of the node's joint softmax, zero excluded; with
    ``max_free_ops`` at most that many weight-free ops per cell (``search.core.decode``)."""
    return {k: decode_cell_arch(supernet.cell_arch[k], edges_per_node=1, max_free_ops=max_free_ops)
            for k in MULTISCALE_CELL_TYPES}


def genotype(cfg: RtdnasConfig, cells: dict, paths: Sequence[PathGenotype]) -> MultiscaleGenotype:
    return MultiscaleGenotype(dict(cells), tuple(paths), cfg.supernet.layers, cfg.supernet.scales, RELAXATION)


def build_derived(cfg: RtdnasConfig, g: MultiscaleGenotype, *, paper_size: bool = False, seed: int = 0) -> FusedMultiscaleNet:
    """The fused network of a genotype at the trained (or paper) width."""
    channels = cfg.supernet.channels if paper_size else cfg.trained_channels
    return FusedMultiscaleNet(g, multiscale_config(cfg, channels), seed=seed)


class FusedLatencyModel:
    """Table latency (ms) of the fused network formed by any subset of a set of paths.

    Traces the fused network of all ``paths`` once at the target clip and keeps the table latency of
    the stem, of every grid edge's cell and of every head; a subset then costs
    ``stem + sum over its distinct grid edges + sum over its distinct final scales`` -- exactly what
    ``predict_latency`` gives for that subset's ``FusedMultiscaleNet`` (vertex sums are free in both).

    Args:
        cfg: Run configuration (widths, grid, target clip).
        cells: Decoded cells ``{"ep", "ns", "ct"}``.
        paths: Every path a subset may use (the gene pool).
        table: Latency table with every key of those cells at the target clip.
        input_shape: Override of the ``(C, T, H, W)`` target.
    """

    def __init__(self, cfg: RtdnasConfig, cells: dict, paths: Sequence[PathGenotype], table: LatencyTable,
                 input_shape: Sequence[int] | None = None):
        net = build_derived(cfg, genotype(cfg, cells, paths))
        sites = trace_sites(net, tuple(input_shape or latency_target_shape(cfg)))

        def ms(prefix: str) -> float:
            return float(sum(table.get(k) for k in sites.outside_under(prefix)))

        self.stem_ms = ms("stem")
        self.edge_ms = {e: (0.0 if e[2] == "skip" else ms(f"cells.{cell_name(*e)}")) for e in net.edges}
        self.head_ms = {s: ms(f"heads.{s}") for s in net.final_scales}
        self.cfg, self.cells = cfg, cells

    def __call__(self, paths: Sequence[PathGenotype]) -> float:
        g = genotype(self.cfg, self.cells, paths)
        edges = path_edges(g)
        finals = {p.scales[-1] for p in paths}
        return self.stem_ms + sum(self.edge_ms[e] for e in edges) + sum(self.head_ms[s] for s in finals)


def rows_view(cfg: RtdnasConfig, rows: Sequence[RowSpec], retrain=None) -> CineRowsConfig:
    """A cine row-table config with this run's data, grid, widths and measurement, for the shared
    ``search.train.cine_rows.CineRows`` (patients, split, retraining, evaluation) of ``rows``."""
    return CineRowsConfig(preset=f"rtdnas-{cfg.preset}", seed=cfg.seed, width_divisor=cfg.width_divisor,
                         threads=cfg.threads, data=cfg.data, supernet=cfg.supernet,
                         retrain=retrain or cfg.retrain, measure=cfg.measure,
                         searches=(SearchRun("rtdnas", latency_aware=True, n_paths=1),), rows=tuple(rows))


msnas_view = rows_view  # the historical name


def row(key: str, name: str, n_paths: int) -> RowSpec:
    """A Table row of a searched (or sampled) fused network."""
    return RowSpec(name, key, "msnas", n_paths=n_paths, latency_aware=True, search="rtdnas")


def with_layers(cfg: RtdnasConfig, layers: int) -> RtdnasConfig:
    return replace(cfg, supernet=replace(cfg.supernet, layers=layers))
