"""The control of every segqc-hw search: a random genotype of the same predicted latency, retrained in the same harness.

Why: ``search.core.convergence`` judges whether a search's architecture weights moved (entropy drop,
derived genotype != argmax at initialisation). Moving is not learning the task: with the latency
term the alphas can drift towards the cheap ops alone, and the entropy falls all the same. The
honest test of a search is whether its derived pair beats what the space gives for free at the same
cost: a random genotype of the space whose lookup-table prediction is the searched pair's, retrained
from scratch with the same patients, schedule and seed (``SegQcExperiment.retrain_controls``). A
search that does not beat its control found a latency, not an architecture.

Sampling: ``search.core.sampling.sample_random_genotype("segqc")``, the sampler the latency check
uses: every edge a uniformly random non-zero op, an edge with ``zero`` in its op set dropped with
probability 1 / K, every node keeping at least one edge. That is the set of genotypes the search's
decoder (``search.core.decode``, argmax structure) can return, with the node count of the run's
space; the depth and widths are the run's (``build_derived``), as for the searched rows.

The U-net skeleton space (``SpaceConfig.seg_space == "skeleton"``) draws a ``SkeletonQcGenotype``: the seg
net a uniformly random skeleton of ``SpaceConfig.skeleton_choices`` (per level, full resolution first,
its width and then its block token, each uniform over the level's candidates; the space's input stride),
then the QC net, the ``.qc`` of the sampler above (the QC space is the cell space's). Its refinement
(below) redraws, with equal odds, one level's width or block (level and which one chosen by the rng,
the new value uniform over the candidates), or changes the QC net as the cell space does (a QC cell
swapped or one QC edge's op redrawn, equal odds).

Matching: ``n_candidates`` genotypes drawn from one seeded generator, each priced by the lookup table
(``FrameworkLatency.of_genotype``, the prediction the searched rows report as ``expected_latency_ms``);
the candidate closest to the target wins, ties to the first drawn. A run draws every control from
the same pool (one sampling seed), so its controls differ only by their targets. A hardware-aware
search lands below the cheapest of 200 uniform draws (the B-mode GDAS run: 20.1 ms predicted against
30.8 ms for the closest draw), so the closest draw is then refined by a cost-only random search
(:func:`refine_to_target`, ``refine_steps``): one of the pair's four cells swapped for a freshly drawn
random cell, or one edge's op redrawn (the skeleton space: see above), kept when the prediction comes closer to the target. It reads only the lookup table, never
the task: the control stays a random architecture, only its cost is matched.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, Sequence, Union

import numpy as np

from search.core.derived.unet_skeleton import Level, UNetSkeleton
from search.core.genotypes import SegQcGenotype, SkeletonQcGenotype
from search.core.sampling import sample_random_genotype
from search.core.supernets.nasunet import cell_specs
from search.core.supernets.qcnet import CONTRACTING_SPEC, NONSCALING_SPEC
from search.core.supernets.unet_skeleton import SkeletonChoices, block_token, parse_block
from search.methods.segqc_hw.config import SegQcConfig
from search.train.cine_rows import read_json, write_json

#: Candidates drawn per run: lookup-table predictions only (a trace of each pair at the measurement resolution).
N_CANDIDATES = 200
#: Changes tried by the cost-only refinement per control (``refine_to_target``; ~0.2 s each at 96x96 on 2 cores).
REFINE_STEPS = 300
#: A control is called matched when its prediction lies within this share of the target.
MATCH_TOLERANCE = 0.05

PairGenotype = Union[SegQcGenotype, SkeletonQcGenotype]
"""A searched (or random) seg + QC pair: the cell space's or the skeleton space's."""
Candidate = tuple[PairGenotype, float]


class GenotypeLatency(Protocol):
    """What prices a candidate (``FrameworkLatency`` does): the lookup table's prediction in ms."""

    def of_genotype(self, genotype: PairGenotype) -> float: ...


def _skeleton_space(cfg: SegQcConfig) -> bool:
    return cfg.space.seg_space == "skeleton"


def _choices(cfg: SegQcConfig) -> SkeletonChoices:
    return cfg.space.skeleton_choices(cfg.task.num_classes)


def _level(width: int, token: str) -> Level:
    op, convs = parse_block(token)
    return Level(int(width), op, convs)


def random_skeleton(choices: SkeletonChoices, rng: np.random.Generator) -> UNetSkeleton:
    """A uniformly random skeleton of ``choices``: per level (full resolution first) its width, then its block
    token, each drawn uniformly with ``rng``; the space's input stride."""
    levels = []
    for widths in choices.widths:
        width = widths[int(rng.integers(len(widths)))]
        token = choices.blocks[int(rng.integers(len(choices.blocks)))]
        levels.append(_level(width, token))
    return UNetSkeleton(tuple(levels), choices.input_stride)


def random_genotype(cfg: SegQcConfig, rng: np.random.Generator) -> PairGenotype:
    """One random genotype of the run's search space (see the module docstring); ``rng`` is the only randomness.

    The skeleton space draws the skeleton first (:func:`random_skeleton`), then the QC net (the ``.qc`` of
    ``sample_random_genotype("segqc")``, whose seg draws are discarded)."""
    if _skeleton_space(cfg):
        seg = random_skeleton(_choices(cfg), rng)
        return SkeletonQcGenotype(seg, sample_random_genotype("segqc", rng, n_nodes=cfg.space.nodes).qc)
    return sample_random_genotype("segqc", rng, n_nodes=cfg.space.nodes, droppable_inputs=cfg.space.droppable_inputs,
                                  keep_prev=cfg.space.keep_prev)


def random_candidates(cfg: SegQcConfig, latency: GenotypeLatency, seed: int,
                      n_candidates: int = N_CANDIDATES) -> list[Candidate]:
    """``n_candidates`` random genotypes drawn in order from ``default_rng(seed)``, each with its predicted ms."""
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be at least 1, got {n_candidates}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_candidates):
        genotype = random_genotype(cfg, rng)
        out.append((genotype, float(latency.of_genotype(genotype))))
    return out


def closest(candidates: Sequence[Candidate], target_ms: float) -> Candidate:
    """The candidate whose predicted ms is closest to ``target_ms``; ties go to the first drawn."""
    return min(candidates, key=lambda c: abs(c[1] - target_ms))  # min keeps the first of equal keys


def matched_random_genotype(cfg: SegQcConfig, latency: GenotypeLatency, target_ms: float, seed: int,
                            n_candidates: int = N_CANDIDATES) -> Candidate:
    """The random genotype (of ``n_candidates`` drawn with ``seed``) predicted closest to ``target_ms``, and its ms."""
    return closest(random_candidates(cfg, latency, seed, n_candidates), target_ms)


def _cells(cfg: SegQcConfig) -> tuple[tuple[str, str, Any], ...]:
    """The pair's cells in the run's space: (part of the genotype, field of that part, the cell's spec). The cell
    space: four (down, up, contracting, non-scaling); the skeleton space: the two QC cells."""
    qc = (("qc", "contracting", replace(CONTRACTING_SPEC, n_nodes=cfg.space.nodes)),
          ("qc", "nonscaling", replace(NONSCALING_SPEC, n_nodes=cfg.space.nodes)))
    if _skeleton_space(cfg):
        return qc
    down, up = cell_specs(cfg.space.nodes, cfg.space.droppable_inputs, cfg.space.keep_prev)
    return (("seg", "down", down), ("seg", "up", up)) + qc


def _with_cell(genotype: PairGenotype, part: str, field: str, cell) -> PairGenotype:
    """``genotype`` with its cell ``part.field`` replaced by ``cell``."""
    return replace(genotype, **{part: replace(getattr(genotype, part), **{field: cell})})


def swap_one_cell(genotype: PairGenotype, cfg: SegQcConfig, rng: np.random.Generator) -> PairGenotype:
    """``genotype`` with one of its cells (``_cells``: down, up, contracting, non-scaling; the skeleton space the
    two QC cells; chosen by ``rng``) replaced by the same cell of a fresh random genotype."""
    fresh = random_genotype(cfg, rng)
    cells = _cells(cfg)
    part, field, _ = cells[int(rng.integers(len(cells)))]
    return _with_cell(genotype, part, field, getattr(getattr(fresh, part), field))


def change_one_op(genotype: PairGenotype, cfg: SegQcConfig, rng: np.random.Generator) -> PairGenotype:
    """``genotype`` with the op of one kept edge (of one of its cells, both chosen by ``rng``) replaced by
    a uniformly drawn op of that edge's op set (never ``zero``): a finer step than ``swap_one_cell``."""
    cells = _cells(cfg)
    part, field, spec = cells[int(rng.integers(len(cells)))]
    cell = getattr(getattr(genotype, part), field)
    edge = cell.edges[int(rng.integers(len(cell.edges)))]
    index = next(e for e, (src, dst, _) in enumerate(spec.edges) if (src, dst) == (edge.src, edge.dst))
    ops = [op for op in spec.edge_ops(index) if op != "zero"]
    new = replace(edge, op=ops[int(rng.integers(len(ops)))])
    return _with_cell(genotype, part, field, replace(cell, edges=tuple(new if e is edge else e for e in cell.edges)))


def redraw_one_level(genotype: SkeletonQcGenotype, cfg: SegQcConfig, rng: np.random.Generator) -> SkeletonQcGenotype:
    """``genotype`` with one level of its skeleton (chosen by ``rng``) changed: its width or its block token (equal
    odds), redrawn uniformly from the space's candidates (possibly the same one)."""
    choices = _choices(cfg)
    levels = list(genotype.seg.levels)
    k = int(rng.integers(len(levels)))
    width, token = levels[k].width, block_token(levels[k])
    if rng.random() < 0.5:
        width = choices.widths[k][int(rng.integers(len(choices.widths[k])))]
    else:
        token = choices.blocks[int(rng.integers(len(choices.blocks)))]
    levels[k] = _level(width, token)
    return replace(genotype, seg=replace(genotype.seg, levels=tuple(levels)))


def _skeleton_change(genotype: SkeletonQcGenotype, cfg: SegQcConfig, rng: np.random.Generator) -> SkeletonQcGenotype:
    """One refinement proposal of the skeleton space: a level redrawn (odds 1/2), else a QC cell swapped or one QC
    edge's op changed (1/4 each)."""
    if rng.random() < 0.5:
        return redraw_one_level(genotype, cfg, rng)
    change = swap_one_cell if rng.random() < 0.5 else change_one_op
    return change(genotype, cfg, rng)


def refine_to_target(start: Candidate, cfg: SegQcConfig, latency: GenotypeLatency, target_ms: float, seed: int,
                     steps: int = REFINE_STEPS) -> Candidate:
    """A cost-only random search from ``start``: ``steps`` random changes, each a cell swap (``swap_one_cell``:
    structure and ops) or an op change (``change_one_op``) with equal odds (the skeleton space: a level's width
    or block redrawn, or a QC change, ``_skeleton_change``), kept when its lookup-table
    prediction lies closer to ``target_ms``. Task-blind: the result is as random an architecture as
    ``start``, at a better matched cost. Stops early once within 1% of the target."""
    rng = np.random.default_rng([seed, 1])
    best = start
    for _ in range(steps):
        if abs(best[1] - target_ms) <= 0.01 * abs(target_ms):
            break
        if _skeleton_space(cfg):
            proposal = _skeleton_change(best[0], cfg, rng)
        else:
            change = swap_one_cell if rng.random() < 0.5 else change_one_op
            proposal = change(best[0], cfg, rng)
        ms = float(latency.of_genotype(proposal))
        if abs(ms - target_ms) < abs(best[1] - target_ms):
            best = (proposal, ms)
    return best


def control_record(of: str, candidate: Candidate, target_ms: float, seed: int, n_candidates: int) -> dict[str, Any]:
    """What ``search/random/<search>.json`` holds: the genotype, the search it controls, target and predicted ms,
    how it was drawn. ``expected_latency_ms`` is named as the searched rows' LUT prediction, so the two compare."""
    genotype, predicted = candidate
    return {"random_control_of": of, "genotype": genotype.to_dict(), "target_ms": float(target_ms),
            "expected_latency_ms": float(predicted), "sampling_seed": seed, "n_candidates": n_candidates,
            "matched": bool(abs(predicted - target_ms) <= MATCH_TOLERANCE * abs(target_ms))}


def write_control(path: Path, record: dict[str, Any]) -> None:
    """Write a control's record (``control_record``) to ``path``."""
    write_json(path, record)


def pair_genotype_from_dict(d: dict[str, Any]) -> PairGenotype:
    """A pair genotype from its ``to_dict``: a ``SkeletonQcGenotype`` where ``d`` has a ``"skeleton"`` key, else a
    ``SegQcGenotype``."""
    return SkeletonQcGenotype.from_dict(d) if "skeleton" in d else SegQcGenotype.from_dict(d)


def read_control(path: Path) -> tuple[PairGenotype, dict[str, Any]]:
    """A control's genotype (either space's, ``pair_genotype_from_dict``) and record, read back from
    ``write_control``'s file."""
    record = read_json(path)
    return pair_genotype_from_dict(record["genotype"]), record
