"""The msnas-hw search space as this method uses it, on top of ``search.core``.

- supernet: ``MultiscaleSupernet`` (L x S grid of shared Ep / Ns / Ct cells, ``edge_op`` relaxation:
  alpha per edge and op, gamma per edge, beta per grid edge leaving a vertex; partial channels k);
- latency term: ``PathwiseLatency`` (eq. 7-9: Gumbel-softmax weights, top-n paths by DP on beta, the
  sum of their expected latencies), from the run's lookup table at the latency target size;
- decoding: ``decode_multiscale`` (argmax alpha excluding zero, one incoming edge per node by argmax
  gamma, the top-n paths by product of beta probabilities, eq. 10);
- derived network: ``FusedMultiscaleNet`` (the n paths, shared prefixes computed once, outputs brought
  to full resolution and summed).

The latency target is the deployed (trained) network at the clip it is deployed with: the search
optimises what ships. The paper-sized twin is timed separately for Table 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from search.core.decode import beta_probabilities, decode_multiscale, top_n_paths
from search.core.estimators import PathwiseLatency, predict_latency
from search.core.genotypes import MULTISCALE_CELL_TYPES, MultiscaleGenotype
from search.core.latency_sites import collect_latency_keys
from search.core.mixed import ArchWeighting
from search.core.ops import OP_SETS
from search.core.supernets.multiscale import MultiscaleSupernet
from search.latency.keys import OpKey
from search.latency.lut import LatencyTable
from search.methods.msnas_hw.config import MsnasHwConfig
from search.train.row_networks import build_derived, multiscale_config

MSNAS_OP_SET = "msnas"


def build_supernet(cfg: MsnasHwConfig, channels: int, *, seed: int) -> MultiscaleSupernet:
    """The search supernet at ``channels`` (trained width), seeded."""
    return MultiscaleSupernet(multiscale_config(cfg.supernet, channels), seed=seed)


def load_searched_supernet(cfg: MsnasHwConfig, checkpoint) -> MultiscaleSupernet:
    """The supernet a search left in ``checkpoint`` (its ``checkpoint.pt``), at the trained widths."""
    supernet = build_supernet(cfg, cfg.trained_channels, seed=cfg.seed + 101)
    supernet.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["supernet"])
    return supernet


def latency_target_shape(cfg: MsnasHwConfig) -> tuple[int, int, int, int]:
    """``(C, T, H, W)`` the latency term is estimated at: the deployed clip."""
    return (1, cfg.data.clip_length, cfg.data.height, cfg.data.width)


def required_keys(cfg: MsnasHwConfig) -> list[OpKey]:
    """Every table key the latency term of a trained-width supernet needs at the target clip."""
    supernet = build_supernet(cfg, cfg.trained_channels, seed=cfg.seed)
    return sorted(collect_latency_keys(supernet, latency_target_shape(cfg)))


class LatencyTerm:
    """``generator -> E[LAT]`` in ms: the top-n path-wise expected latency under Gumbel-softmax weights.

    The estimator is built once (it traces the supernet at the target clip and looks every key up);
    each call draws fresh Gumbel noise from the search's generator.
    """

    def __init__(self, cfg: MsnasHwConfig, supernet: MultiscaleSupernet, table: LatencyTable, n_paths: int):
        self.estimator = PathwiseLatency(supernet, table, latency_target_shape(cfg), n_paths)
        self.tau = cfg.search.gumbel_tau

    def __call__(self, generator: torch.Generator) -> torch.Tensor:
        return self.estimator(ArchWeighting("gumbel", self.tau, False, generator))


def latency_term(cfg: MsnasHwConfig, supernet: MultiscaleSupernet, table: LatencyTable, n_paths: int) -> LatencyTerm:
    return LatencyTerm(cfg, supernet, table, n_paths)


def expected_latency(cfg: MsnasHwConfig, supernet: MultiscaleSupernet, table: LatencyTable, n_paths: int) -> float:
    """Deterministic (softmax-weighted) top-n path-wise estimate, ms."""
    with torch.no_grad():
        return float(PathwiseLatency(supernet, table, latency_target_shape(cfg), n_paths)())


def decoded_latency(cfg: MsnasHwConfig, genotype: MultiscaleGenotype, table: LatencyTable) -> float:
    """The table's plain-sum prediction for the derived network at the target clip, ms."""
    net = build_derived(genotype, cfg.trained_channels, cfg.supernet)
    return predict_latency(net, latency_target_shape(cfg), table)


def decode(supernet: MultiscaleSupernet, n_paths: int) -> MultiscaleGenotype:
    """Cells (argmax alpha without zero, one input per node by argmax gamma) + top-n paths."""
    return decode_multiscale(supernet, n_paths, edges_per_node=1)


def arch_summary(supernet: MultiscaleSupernet, n_top: int = 6) -> dict[str, Any]:
    """Plain-JSON view of the architecture weights: op / edge probabilities per cell type, top paths."""
    ops = OP_SETS[MSNAS_OP_SET]
    out: dict[str, Any] = {"ops": list(ops), "cells": {}}
    with torch.no_grad():
        for kind in MULTISCALE_CELL_TYPES:
            arch = supernet.cell_arch[kind]
            edges = []
            for e, (src, dst, _) in enumerate(arch.spec.edges):
                p = torch.softmax(arch.alpha(e), 0).tolist()
                edges.append({"src": src, "dst": dst, "op_probs": [round(v, 4) for v in p]})
            gamma = arch.gamma.detach()
            strengths = []
            for dst in range(arch.spec.n_inputs, arch.spec.n_inputs + arch.spec.n_nodes):
                into = arch.spec.incoming(dst)
                strengths.append({"dst": dst, "edge_probs": [round(v, 4) for v in torch.softmax(gamma[into], 0).tolist()]})
            out["cells"][kind] = {"edges": edges, "gamma": strengths}
    probs = beta_probabilities(supernet)
    out["top_paths"] = [{"kinds": list(p.kinds), "weight": float(w)} for p, w in top_n_paths(probs, n_top)]
    out["beta_probs"] = np.round(probs, 4).tolist()
    return out
