"""Decoders: architecture weights -> genotype (pure functions of arrays), and top-n network paths.

Cells. Per edge e the op probabilities ``p_e (K_e,)`` and an edge strength are derived from the logits
under the cell's relaxation:

- ``"op"``: ``p_e = softmax(alpha_e)``; strength = the largest non-zero op probability.
- ``"edge_op"``: ``p_e = softmax(alpha_e)``; strength = ``softmax_{edges into the node}(gamma)_e``.
- ``"input_op_pair"``: ``p_e`` = the edge's slice of the node's joint softmax; strength = its largest
  non-zero entry (so the argmax pair wins).

Every kept edge takes its most probable op **excluding zero**. Which edges a node keeps:

- ``edges_per_node=None`` ("argmax structure", segqc-hw): an edge is kept unless zero is its most
  probable op; a node whose edges all lost to zero keeps its strongest one.
- ``edges_per_node=n`` (msnas-hw / rtdnas use 1; DARTS uses 2): the n strongest incoming edges.

``max_free_ops=m`` (P-DARTS' limit on skip-connects, Chen et al. 2019; issue 16) caps the kept edges whose op
has no weights (``search.core.ops.PARAMETER_FREE_OPS``: identity, pooling) at m per cell: while more are kept,
the one that loses least (the smallest drop in its edge's probability) takes its edge's most probable op with
weights instead. A search that drifted to weight-free ops (they lower the loss first, before the convolutions
have trained) then still derives a cell that can learn. None (default): no cap.

Network paths: a path's weight is the product of the beta probabilities of its edges (eq. 10);
:func:`top_n_paths` finds the n heaviest input-to-output paths exactly by k-best dynamic programming;
:func:`sample_paths` draws distinct paths from the same distribution (a walk over the grid, one step per layer).
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

import numpy as np

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
)
from search.core.op_names import PARAMETER_FREE_OPS

if TYPE_CHECKING:  # the decoders read arrays (a supernet's logits through .detach()): no torch import here
    from search.core.cells import CellArch, CellSpec

T = TypeVar("T")


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def cell_edge_probabilities(
    spec: CellSpec, relaxation: str, alphas: Sequence[np.ndarray], gamma: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Op probabilities per edge and edge strengths, from logits.

    Args:
        spec: Cell type.
        relaxation: ``"op"``, ``"edge_op"`` or ``"input_op_pair"``.
        alphas: Per edge (``spec.edges`` order) op logits ``(K_e,)``.
        gamma: ``(E,)`` edge logits (``"edge_op"`` only).

    Returns:
        ``(probs, strength)``: ``probs[e] (K_e,)`` and ``strength (E,)``.
    """
    alphas = [np.asarray(a, dtype=np.float64) for a in alphas]
    n_edges = len(spec.edges)
    if len(alphas) != n_edges:
        raise ValueError(f"cell has {n_edges} edges, got {len(alphas)} alpha rows")
    probs: list[np.ndarray] = [np.empty(0)] * n_edges
    strength = np.zeros(n_edges)
    for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
        into = spec.incoming(dst)
        if relaxation == "input_op_pair":
            joint = _softmax(np.concatenate([alphas[e] for e in into]))
            parts = np.split(joint, np.cumsum([len(alphas[e]) for e in into])[:-1])
            for e, part in zip(into, parts):
                probs[e] = part
        else:
            for e in into:
                probs[e] = _softmax(alphas[e])
        if relaxation == "edge_op":
            if gamma is None:
                raise ValueError("edge_op relaxation needs gamma")
            strength[into] = _softmax(np.asarray(gamma, dtype=np.float64)[into])
        elif relaxation in ("op", "input_op_pair"):
            for e in into:
                strength[e] = max(p for p, name in zip(probs[e], spec.edge_ops(e)) if name != "zero")
        else:
            raise ValueError(f"unknown relaxation {relaxation!r}")
    return probs, strength


def decode_cell(
    spec: CellSpec,
    relaxation: str,
    alphas: Sequence[np.ndarray],
    gamma: np.ndarray | None = None,
    edges_per_node: int | None = None,
    max_free_ops: int | None = None,
) -> CellGenotype:
    """Discrete cell from logits (see the module docstring for the rules). Ties go to the lower index."""
    if max_free_ops is not None and max_free_ops < 0:
        raise ValueError(f"max_free_ops must be >= 0, got {max_free_ops}")
    probs, strength = cell_edge_probabilities(spec, relaxation, alphas, gamma)
    kept: list[CellEdge] = []
    kept_index: list[int] = []  # the spec edge of each kept edge
    for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
        into = spec.incoming(dst)
        if edges_per_node is None:
            chosen = [e for e in into if spec.edge_ops(e)[int(np.argmax(probs[e]))] != "zero"]
            if not chosen:
                chosen = [max(into, key=lambda e: (strength[e], -e))]
        else:
            chosen = sorted(into, key=lambda e: (-strength[e], e))[:edges_per_node]
        for e in chosen:
            names = spec.edge_ops(e)
            best = max((k for k, n in enumerate(names) if n != "zero"), key=lambda k: (probs[e][k], -k))
            kept.append(CellEdge(spec.edges[e][0], dst, names[best]))
            kept_index.append(e)
    if max_free_ops is not None:
        kept = _cap_free_ops(spec, probs, kept, kept_index, max_free_ops)
    return CellGenotype(spec.n_inputs, spec.n_nodes, tuple(kept), spec.output)


def sample_cell(
    spec: CellSpec,
    relaxation: str,
    alphas: Sequence[np.ndarray],
    rng: np.random.Generator,
    max_free_ops: int | None = None,
    gamma: np.ndarray | None = None,
) -> CellGenotype:
    """A discrete cell drawn from the searched distribution: one (input, op) pair per node.

    ``"input_op_pair"``: each node draws one pair from its joint softmax (as :func:`decode_cell` with
    ``edges_per_node=1`` takes its argmax), ``zero`` excluded and the rest renormalised. ``"edge_op"``
    (msnas-hw; needs ``gamma``): each node draws its input edge from the softmax of its edge weights,
    then that edge's op from its op softmax, ``zero`` excluded (the order in which :func:`decode_cell`
    takes the argmax). Every draw comes from ``rng``. With ``max_free_ops`` the draw is capped as
    :func:`decode_cell` caps the argmax. rtdnas and msnas-hw draw candidate cells this way beside the
    argmax and keep the one that trains best on patients the short training did not see
    (``search.train.cine_config.PickConfig``).
    """
    if relaxation not in ("input_op_pair", "edge_op"):
        raise ValueError(f"sample_cell draws from a node's (input, op) distribution under the input_op_pair or "
                         f"edge_op relaxation; got relaxation {relaxation!r}")
    if max_free_ops is not None and max_free_ops < 0:
        raise ValueError(f"max_free_ops must be >= 0, got {max_free_ops}")
    probs, strength = cell_edge_probabilities(spec, relaxation, alphas, gamma)
    kept: list[CellEdge] = []
    kept_index: list[int] = []
    for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
        into = spec.incoming(dst)
        if relaxation == "edge_op":  # the edge from its softmax, then the op on it
            edge_w = np.array([strength[e] for e in into])
            into = [into[int(rng.choice(len(into), p=edge_w / edge_w.sum()))]]
        pairs = [(e, k) for e in into for k, name in enumerate(spec.edge_ops(e)) if name != "zero"]
        w = np.array([probs[e][k] for e, k in pairs])
        e, k = pairs[int(rng.choice(len(pairs), p=w / w.sum()))]
        kept.append(CellEdge(spec.edges[e][0], dst, spec.edge_ops(e)[k]))
        kept_index.append(e)
    if max_free_ops is not None:
        kept = _cap_free_ops(spec, probs, kept, kept_index, max_free_ops)
    return CellGenotype(spec.n_inputs, spec.n_nodes, tuple(kept), spec.output)


def sample_cell_arch(arch: CellArch, rng: np.random.Generator, max_free_ops: int | None = None) -> CellGenotype:
    """:func:`sample_cell` on the current logits of a :class:`CellArch`."""
    gamma = arch.gamma.detach().cpu().numpy() if arch.relaxation == "edge_op" else None
    return sample_cell(arch.spec, arch.relaxation, _alphas(arch), rng, max_free_ops, gamma)


def _alphas(arch: CellArch) -> list[np.ndarray]:
    """The op logits of every edge of ``arch``, as arrays."""
    return [arch.alpha(e).detach().cpu().numpy() for e in range(len(arch.spec.edges))]


def _cap_free_ops(spec: CellSpec, probs: Sequence[np.ndarray], kept: list[CellEdge], kept_index: list[int],
                  max_free: int) -> list[CellEdge]:
    """``kept`` with at most ``max_free`` weight-free ops: the cheapest swaps to the edge's best op with weights."""
    kept = list(kept)

    def swap(i: int) -> tuple[float, int, int] | None:  # (probability lost, -edge, op index) or None
        names, p = spec.edge_ops(kept_index[i]), probs[kept_index[i]]
        ops = [k for k, n in enumerate(names) if n not in PARAMETER_FREE_OPS]
        if not ops:
            return None
        k = max(ops, key=lambda k: (p[k], -k))
        return float(p[names.index(kept[i].op)] - p[k]), -kept_index[i], k

    while True:
        free = [i for i, edge in enumerate(kept) if edge.op in PARAMETER_FREE_OPS]
        options = [(s, i) for i in free if (s := swap(i)) is not None]
        if len(free) <= max_free or not options:
            return kept
        (_, _, k), i = min(options)
        kept[i] = CellEdge(kept[i].src, kept[i].dst, spec.edge_ops(kept_index[i])[k])


def decode_cell_arch(arch: CellArch, edges_per_node: int | None = None,
                     max_free_ops: int | None = None) -> CellGenotype:
    """:func:`decode_cell` on the current logits of a :class:`CellArch`."""
    gamma = arch.gamma.detach().cpu().numpy() if arch.relaxation == "edge_op" else None
    return decode_cell(arch.spec, arch.relaxation, _alphas(arch), gamma, edges_per_node, max_free_ops)


def decode_nasunet(supernet, edges_per_node: int | None = None) -> NasUnetGenotype:
    """Genotype of a :class:`~search.core.supernets.nasunet.NasUnetSupernet`."""
    return NasUnetGenotype(*(decode_cell_arch(supernet.cell_arch[k], edges_per_node) for k in ("down", "up")))


def decode_qc(supernet, edges_per_node: int | None = None) -> QcGenotype:
    """Genotype of a :class:`~search.core.supernets.qcnet.QcSupernet`."""
    return QcGenotype(*(decode_cell_arch(supernet.cell_arch[k], edges_per_node) for k in ("contracting", "nonscaling")))


# --------------------------------------------------------------------------- network paths


def path_log_weight(path: PathGenotype, probs: np.ndarray) -> float:
    """``log prod_l p(beta)[l, scale_l, kind_l]`` for ``probs (L, S, 4)``; -inf for an illegal step."""
    total, scale = 0.0, 0
    for layer, kind in enumerate(path.kinds):
        p = float(probs[layer, scale, STEP_KINDS.index(kind)])
        if p <= 0.0:
            return float("-inf")
        total += np.log(p)
        scale += STEP_DELTA[kind]
    return total


def all_paths(n_layers: int, n_scales: int) -> list[PathGenotype]:
    """Every legal path of the grid (brute force; 4^L candidates, use for small L only)."""
    out = []
    for kinds in itertools.product(STEP_KINDS, repeat=n_layers):
        scale, ok = 0, True
        for kind in kinds:
            scale += STEP_DELTA[kind]
            ok = ok and 0 <= scale < n_scales
        if ok:
            out.append(PathGenotype(kinds))
    return out


def top_n_paths(probs: np.ndarray, n: int) -> list[tuple[PathGenotype, float]]:
    """The ``n`` heaviest input-to-output paths by product of edge probabilities (eq. 10), exactly.

    k-best dynamic programming over the layer x scale DAG: every vertex keeps the n best path prefixes
    reaching it (a top-n path's prefix is always among the top-n prefixes of its vertex). Ties are
    broken by the kinds sequence (lexicographic in ``STEP_KINDS`` order), so the result is deterministic.

    Args:
        probs: ``(L, S, 4)`` edge probabilities (``MultiscaleSupernet.beta_probs``), 0 = no edge.
        n: How many paths.

    Returns:
        Up to n ``(path, probability)`` pairs, heaviest first.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n_layers, n_scales, _ = probs.shape
    with np.errstate(divide="ignore"):
        logp = np.log(probs)
    # prefixes[s] = list of (-log weight, kind indices) reaching scale s at the current layer
    prefixes: dict[int, list[tuple[float, tuple[int, ...]]]] = {0: [(0.0, ())]}
    for layer in range(n_layers):
        nxt: dict[int, list[tuple[float, tuple[int, ...]]]] = {}
        for s, items in prefixes.items():
            for k, kind in enumerate(STEP_KINDS):
                dst = s + STEP_DELTA[kind]
                if not 0 <= dst < n_scales or not np.isfinite(logp[layer, s, k]):
                    continue
                nxt.setdefault(dst, []).extend((cost - logp[layer, s, k], seq + (k,)) for cost, seq in items)
        prefixes = {s: heapq.nsmallest(n, items) for s, items in nxt.items()}
    best = heapq.nsmallest(n, (item for items in prefixes.values() for item in items))
    return [(PathGenotype(tuple(STEP_KINDS[k] for k in seq)), float(np.exp(-cost))) for cost, seq in best]


def sample_paths(probs: np.ndarray, n: int, rng: np.random.Generator, max_draws: int | None = None) -> list[PathGenotype]:
    """Up to ``n`` distinct paths drawn from the searched path distribution, in the order first drawn.

    Each path is a walk from layer 0, scale 0: at every layer it draws its step from that (layer, scale)'s
    beta probabilities among the steps that stay on the grid (renormalised). Where :func:`top_n_paths` keeps
    the heaviest paths -- which, when the search favours ``skip`` at full resolution, all stay there -- a draw
    leaves scale 0 as often as the probabilities say. rtdnas draws gene pools this way for the candidates of
    its pick (``RtdnasConfig.pick``).

    Args:
        probs: ``(L, S, 4)`` edge probabilities, 0 = no edge.
        n: Distinct paths wanted.
        rng: The only randomness.
        max_draws: Walks at most (default ``50 n``); fewer than ``n`` paths come back when the distribution
            has fewer to give.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n_layers, n_scales, _ = probs.shape

    def walk() -> PathGenotype:
        kinds, scale = [], 0
        for layer in range(n_layers):
            legal = [k for k, kind in enumerate(STEP_KINDS)
                     if 0 <= scale + STEP_DELTA[kind] < n_scales and probs[layer, scale, k] > 0]
            w = probs[layer, scale, legal]
            k = legal[int(rng.choice(len(legal), p=w / w.sum()))]
            kinds.append(STEP_KINDS[k])
            scale += STEP_DELTA[STEP_KINDS[k]]
        return PathGenotype(tuple(kinds))

    return draw_distinct(walk, n, max_draws=max_draws)


def draw_distinct(draw: Callable[[], T], n: int, have: Sequence[T] = (), max_draws: int | None = None) -> list[T]:
    """``have`` then new distinct draws, until ``n`` items or ``max_draws`` calls of ``draw`` (default ``50 n``).

    What the picks draw with (cell sets, paths): a converged distribution may have fewer than ``n`` distinct
    items to give, so the draws are bounded and fewer than ``n`` may come back.
    """
    out = list(have)
    for _ in range(50 * n if max_draws is None else max_draws):
        if len(out) >= n:
            break
        item = draw()
        if item not in out:
            out.append(item)
    return out


def beta_probabilities(supernet) -> np.ndarray:
    """``(L, S, 4)`` softmax probabilities of the grid edges leaving each vertex of a multi-scale supernet."""
    return supernet.beta_probs().detach().cpu().numpy()


def sample_multiscale_cells(supernet, rng: np.random.Generator, max_free_ops: int | None = None) -> dict[str, CellGenotype]:
    """One cell of each type of a multi-scale supernet drawn from its distribution (:func:`sample_cell`, in
    ``MULTISCALE_CELL_TYPES`` order from ``rng``; capped with ``max_free_ops``): the picks' cell candidates."""
    return {k: sample_cell_arch(supernet.cell_arch[k], rng, max_free_ops) for k in MULTISCALE_CELL_TYPES}


def decode_multiscale(supernet, n_paths: int, edges_per_node: int = 1) -> MultiscaleGenotype:
    """Genotype of a :class:`~search.core.supernets.multiscale.MultiscaleSupernet`: cells + top-n paths."""
    cfg = supernet.config
    cells = {k: decode_cell_arch(supernet.cell_arch[k], edges_per_node) for k in MULTISCALE_CELL_TYPES}
    probs = beta_probabilities(supernet)
    paths = tuple(p for p, _ in top_n_paths(probs, n_paths))
    return MultiscaleGenotype(cells, paths, cfg.n_layers, cfg.n_scales, cfg.relaxation)
