"""Random discrete architectures from each search space (latency check, the rtdnas Pareto cloud).

Sampling mirrors what the decoders can produce, so the random networks cover the same space:

- ``"segqc"`` -> :class:`SegQcGenotype`: every edge takes a uniformly random non-zero op; an edge whose
  op set contains ``zero`` is dropped with probability 1 / K (the chance that zero wins the argmax
  under uniform logits), but every node keeps at least one edge ("argmax structure").
- ``"msnas"`` / ``"rtdnas"`` -> :class:`MultiscaleGenotype`: every node keeps one random incoming edge
  with a random non-zero op; the paths are distinct random walks from (0, 0) choosing uniformly among
  the edges leaving each vertex. ``n_paths`` defaults to a uniform draw from 1..4 (msnas) or 1..8
  (rtdnas, N_l up to 8); ``n_layers`` defaults to 8 (msnas) or 10 (rtdnas).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from search.core.cells import CellSpec
from search.core.op_names import PARAMETER_FREE_OPS
from search.core.genotypes import (
    MULTISCALE_CELL_TYPES,
    STEP_DELTA,
    STEP_KINDS,
    CellEdge,
    CellGenotype,
    MultiscaleGenotype,
    NasUnetGenotype,
    PathGenotype,
    QcGenotype,
    SegQcGenotype,
)
from search.core.supernets.multiscale import MULTISCALE_SPEC, kind_available
from search.core.supernets.nasunet import cell_specs
from search.core.supernets.qcnet import CONTRACTING_SPEC, NONSCALING_SPEC

SPACES = ("segqc", "msnas", "rtdnas")


def random_cell(spec: CellSpec, rng: np.random.Generator, edges_per_node: int | None = None,
                free_prob: float | None = None) -> CellGenotype:
    """A random discrete cell of ``spec`` (``edges_per_node`` as in :func:`decode.decode_cell`); with
    ``free_prob``, each kept edge's op is weight-free (identity, a pool) with that probability and one with
    weights otherwise, each uniform within its kind (cheap cells, like those hardware-aware searches keep)."""
    edges = []
    for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
        into = spec.incoming(dst)
        if edges_per_node is None:
            kept = [e for e in into if "zero" not in spec.edge_ops(e) or rng.random() >= 1.0 / len(spec.edge_ops(e))]
            if not kept:
                kept = [into[int(rng.integers(len(into)))]]
        else:
            kept = sorted(rng.choice(into, size=min(edges_per_node, len(into)), replace=False).tolist())
        for e in kept:
            ops = [n for n in spec.edge_ops(e) if n != "zero"]
            if free_prob is not None:
                free = [n for n in ops if n in PARAMETER_FREE_OPS]
                weighted = [n for n in ops if n not in PARAMETER_FREE_OPS]
                pick_free = bool(free) and (not weighted or rng.random() < free_prob)
                ops = free if pick_free else weighted
            edges.append(CellEdge(spec.edges[e][0], dst, ops[int(rng.integers(len(ops)))]))
    return CellGenotype(spec.n_inputs, spec.n_nodes, tuple(edges), spec.output)


def random_path(n_layers: int, n_scales: int, rng: np.random.Generator, skip_prob: float | None = None) -> PathGenotype:
    """A random walk from (0, 0): at every vertex a uniform choice among the edges leaving it; with
    ``skip_prob``, a ``skip`` step (no cell) with that probability and a uniform choice among the others
    otherwise (sparse paths, like those the searches keep: see ``sample_random_genotype``)."""
    kinds, scale = [], 0
    for _ in range(n_layers):
        options = [k for k in STEP_KINDS if kind_available(k, scale, n_scales)]
        if skip_prob is not None and "skip" in options:
            others = [k for k in options if k != "skip"]
            kind = "skip" if (not others or rng.random() < skip_prob) else others[int(rng.integers(len(others)))]
        else:
            kind = options[int(rng.integers(len(options)))]
        kinds.append(kind)
        scale += STEP_DELTA[kind]
    return PathGenotype(tuple(kinds))


def random_paths(n: int, n_layers: int, n_scales: int, rng: np.random.Generator,
                 skip_prob: float | None = None) -> tuple[PathGenotype, ...]:
    """``n`` distinct random paths (bounded retries: raises if the grid cannot supply them)."""
    paths: list[PathGenotype] = []
    for _ in range(100 * n):
        p = random_path(n_layers, n_scales, rng, skip_prob)
        if p not in paths:
            paths.append(p)
            if len(paths) == n:
                return tuple(paths)
    raise ValueError(f"could not draw {n} distinct paths on a {n_layers}x{n_scales} grid")


def sample_random_genotype(
    space: str,
    rng: np.random.Generator,
    n_layers: int | None = None,
    n_scales: int = 4,
    n_paths: int | None = None,
    n_nodes: int = 3,
    skip_prob: float | None = None,
    droppable_inputs: bool = False,
    keep_prev: bool = False,
):
    """One random discrete architecture of ``space`` (see the module docstring).

    Args:
        space: ``"segqc"``, ``"msnas"`` or ``"rtdnas"``.
        rng: The only source of randomness.
        n_layers, n_scales, n_paths: Multi-scale grid and path count (defaults per space).
        n_nodes: M.
        skip_prob: Multi-scale spaces: each path step is a ``skip`` with this probability (None: uniform
            among the available steps, as the module docstring says). The searches ship sparse paths
            (mostly skips), far cheaper than uniform walks; ``latency-check --sparse-share`` samples some
            networks this way so the calibration is fitted where the searches land. segqc: each cell edge's
            op is weight-free with this probability (``random_cell(free_prob=...)``), for the same reason.
        droppable_inputs, keep_prev: segqc: the seg cells' input edges may be dropped too, those of the previous
            cell not with ``keep_prev`` (``nasunet.cell_specs``).

    Returns:
        :class:`SegQcGenotype` or :class:`MultiscaleGenotype`.
    """
    if space == "segqc":
        down, up = cell_specs(n_nodes, droppable_inputs, keep_prev)
        con, non = (dataclasses.replace(s, n_nodes=n_nodes) for s in (CONTRACTING_SPEC, NONSCALING_SPEC))
        return SegQcGenotype(
            NasUnetGenotype(random_cell(down, rng, free_prob=skip_prob), random_cell(up, rng, free_prob=skip_prob)),
            QcGenotype(random_cell(con, rng, free_prob=skip_prob), random_cell(non, rng, free_prob=skip_prob)),
        )
    if space not in SPACES:
        raise ValueError(f"unknown search space {space!r}; known: {SPACES}")
    n_layers = n_layers or (8 if space == "msnas" else 10)
    n_paths = n_paths or int(rng.integers(1, (4 if space == "msnas" else 8) + 1))
    spec = dataclasses.replace(MULTISCALE_SPEC, n_nodes=n_nodes)
    cells = {k: random_cell(spec, rng, edges_per_node=1) for k in MULTISCALE_CELL_TYPES}
    relaxation = "edge_op" if space == "msnas" else "input_op_pair"
    paths = random_paths(n_paths, n_layers, n_scales, rng, skip_prob)
    return MultiscaleGenotype(cells, paths, n_layers, n_scales, relaxation)
