"""Does the lookup table predict what whole networks take? Sample, export, measure, compare.

For each search space, random discrete architectures are sampled and built as derived networks;
each is exported to ONNX and timed end to end under the deployed session settings, and its
table prediction is the sum of the entries of the ops it contains (``zero`` ops excluded). The
figures: median absolute percentage error (MdAPE), the fraction within +-10 %, Kendall's tau.

Three predictors are reported, honestly separated:

- ``raw``: the plain sum of entries (the FBNet additive model), on every network;
- ``calibrated_fit``: the affine calibration (``search.latency.calibration``) on the half of the
  networks it was fitted on;
- ``calibrated_held_out``: the same calibration on the other half, which it never saw. The
  targets (MdAPE <= 10 %, tau >= 0.8) are judged on this one; nn-Meter's goal, at least 90 % of
  the networks within +-10 %, is reported beside them (it does not change the pass / fail rule).

Shipped networks (``SampledNetwork.model_id`` set: a model card's network rebuilt from its
architecture, ``search.report.shipped_latency``) are timed in the same rounds as their space's
random networks and predicted with the calibration of those random networks; they are never fitted
on, and their figures are reported apart (:func:`shipped_figures`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from search.latency.calibration import (
    GLOBAL,
    NetworkCalibration,
    figures,
    fit_calibration,
    split_indices,
    within,
)
from search.latency.keys import OpKey
from search.latency.lut import LatencyTable
from search.latency.measure import TIMINGS, measure_blocks, measure_interleaved
from search.latency.onnx_bytes import count_onnx_nodes, export_onnx_bytes

log = logging.getLogger(__name__)

TARGET_MDAPE_PCT = 10.0
TARGET_KENDALL_TAU = 0.8
#: nn-Meter's accuracy goal: this share of the networks predicted within +-10 % (reported, not a pass rule).
GOAL_WITHIN_10PCT = 0.9


@dataclass
class SampledNetwork:
    """One random discrete architecture, built.

    Attributes:
        space: Search space name (``"segqc"``, ``"msnas"``, ``"rtdnas"``).
        index: Sample index within the space.
        module: The derived network (or seg + QC framework) as one module.
        example_input: ``(1, C, H, W)`` or ``(1, C, T, H, W)`` input, or a tuple of inputs (a
            streaming step: ``(frame (1, C, 1, H, W), *states)``, ``search.export.stream_latency``).
        keys: One ``OpKey`` per table op instance in the network (repeats kept, ``zero`` excluded).
        genotype: JSON-able description of the architecture, for the record (a shipped network:
            card id -> genotype of every card it runs, the segmentation card first).
        model_id: Id of the shipped model card the network was rebuilt from; ``None`` for a random
            sample. Shipped networks are never fitted on.
    """

    space: str
    index: int
    module: nn.Module
    example_input: torch.Tensor | tuple[torch.Tensor, ...]
    keys: list[OpKey]
    genotype: object = None
    model_id: str | None = None

    def inputs(self) -> tuple[torch.Tensor, ...]:
        """The example inputs as a tuple (one tensor for a clip or image network)."""
        x = self.example_input
        return tuple(x) if isinstance(x, (tuple, list)) else (x,)


#: ``(space, n, seed) -> SampledNetwork``s: the search-space side of the check.
NetworkSampler = Callable[[str, int, int], Iterable[SampledNetwork]]


@dataclass
class NetworkRecord:
    """Prediction and measurement of one sampled (or shipped) network (what the JSON report lists).

    ``split`` is ``"fit"`` or ``"held_out"`` for a random network, ``"shipped"`` for a shipped one
    (``model_id`` set), whose ``predicted_ms`` comes from its space's calibration, never fitted on it.
    """

    space: str
    index: int
    n_ops: int
    sum_ms: float
    measured_p50_ms: float
    measured_p95_ms: float
    onnx_nodes: int
    predicted_ms: float = float("nan")
    split: str = ""
    genotype: object = None
    sum_by_op: dict[str, float] = field(default_factory=dict)
    count_by_op: dict[str, int] = field(default_factory=dict)
    model_id: str | None = None
    input_shape: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CheckSettings:
    """How many networks, how each is timed, and the seed of everything random.

    Attributes:
        samples: Random architectures per space.
        warmup: Discarded runs per network.
        repeats: Least timed rounds per group.
        group_size: Networks timed round-robin together; large groups make slow drifts of the
            machine's load common to all of them (what matters for the rank correlation).
        min_timed_ms: More rounds for fast networks: at least this much predicted timing per
            network (up to 5x ``repeats``), so narrow-range spaces are not ranked by noise.
        intra_op_threads: Session threads (``None``: the app's default).
        fit_fraction: Share of each space's networks the calibration is fitted on.
        seed: Seed of sampling, split and round order.
        timing: One of ``TIMINGS``. With ``blocks``, a network's timed runs (as many as
            ``interleaved`` would take, rounded up to a multiple of ``rounds``) are spread over ``rounds``
            warm blocks, each after ``warmup`` discarded runs.
        rounds: Blocks per network with ``timing="blocks"``.
    """

    samples: int = 50
    warmup: int = 5
    repeats: int = 30
    group_size: int = 50
    min_timed_ms: float = 2000.0
    intra_op_threads: int | None = None
    fit_fraction: float = 0.5
    seed: int = 0
    timing: str = "interleaved"
    rounds: int = 5

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise ValueError(f"timing must be one of {TIMINGS}, got {self.timing!r}")
        if self.rounds < 1:
            raise ValueError(f"need at least one round, got {self.rounds}")


@dataclass
class CheckResult:
    """Figures per space (and over all spaces) plus the fitted calibrations and the records.

    ``records`` holds every record, shipped ones included; ``spaces`` and ``calibrations`` come from
    the random ones only.
    """

    spaces: dict[str, dict[str, object]] = field(default_factory=dict)
    calibrations: dict[str, NetworkCalibration] = field(default_factory=dict)
    records: list[NetworkRecord] = field(default_factory=list)

    def passed(self) -> bool:
        """True when every space meets both targets on its held-out networks (``"global"`` is informative)."""
        per_space = [figs for space, figs in self.spaces.items() if space != GLOBAL]
        return bool(per_space) and all(bool(figs["meets_targets"]) for figs in per_space)


def table_prediction(table: LatencyTable, keys: Sequence[OpKey]) -> tuple[float, int]:
    """(sum of entries in ms, number of ops) for one network's op instances.

    Raises:
        MissingLatencyKey: a key is not in the table (named in the message).
    """
    return float(sum(table.get(k) for k in keys)), len(keys)


def measure_networks(networks: Sequence[SampledNetwork], table: LatencyTable, settings: CheckSettings,
                     progress: Callable[[int, int, list[NetworkRecord]], None] | None = None) -> list[NetworkRecord]:
    """Export and time networks in groups (interleaved or warm blocks, ``settings.timing``); pair each with its
    table prediction.

    Args:
        networks: The sampled networks, timed ``settings.group_size`` at a time, round-robin. A
            shipped network (``model_id`` set) is timed in the group of the random networks listed
            just before it, without counting towards its size: put a space's shipped networks after
            its random ones and they share their rounds (and the random groups stay as without them).
        table: Must hold every key of every network (``MissingLatencyKey`` names the first missing).
        settings: Warm-up, repeats, threads, seed.
        progress: Called after each group with ``(n_done, n_total, records so far)``.
    """
    records: list[NetworkRecord] = []
    for start, group in _timing_groups(networks, settings.group_size):
        models, shapes, nodes = {}, {}, {}
        for net in group:
            name = _timing_name(net)
            inputs = net.inputs()
            models[name] = export_onnx_bytes(net.module, inputs)
            shapes[name] = tuple(inputs[0].shape) if len(inputs) == 1 else {
                f"input{j}": tuple(x.shape) for j, x in enumerate(inputs)}
            nodes[name] = count_onnx_nodes(models[name])
        slowest = max(max(table_prediction(table, net.keys)[0], 1e-3) for net in group)
        repeats = int(min(5 * settings.repeats, max(settings.repeats, np.ceil(settings.min_timed_ms / slowest))))
        if settings.timing == "blocks":
            stats = measure_blocks(models, shapes, warmup=settings.warmup, runs=-(-repeats // settings.rounds),
                                   rounds=settings.rounds, intra_op_threads=settings.intra_op_threads,
                                   seed=settings.seed + start)
        else:
            stats = measure_interleaved(models, shapes, warmup=settings.warmup, repeats=repeats,
                                        intra_op_threads=settings.intra_op_threads, seed=settings.seed + start)
        for net in group:
            name = _timing_name(net)
            sum_ms, n_ops = table_prediction(table, net.keys)
            by_op: dict[str, float] = {}
            count: dict[str, int] = {}
            for k in net.keys:
                by_op[k.op] = by_op.get(k.op, 0.0) + table.get(k)
                count[k.op] = count.get(k.op, 0) + 1
            records.append(NetworkRecord(space=net.space, index=net.index, n_ops=n_ops, sum_ms=sum_ms,
                                         measured_p50_ms=stats[name].p50_ms, measured_p95_ms=stats[name].p95_ms,
                                         onnx_nodes=nodes[name], genotype=net.genotype, sum_by_op=by_op,
                                         count_by_op=count, model_id=net.model_id,
                                         input_shape=[int(d) for d in net.inputs()[0].shape]))
        if progress is not None:
            progress(len(records), len(networks), records)
    return records


def _timing_name(net: SampledNetwork) -> str:
    return f"{net.space}/{net.model_id}" if net.model_id is not None else f"{net.space}/{net.index}"


def _timing_groups(networks: Sequence[SampledNetwork], group_size: int) -> list[tuple[int, list[SampledNetwork]]]:
    """``(index of the group's first random network, networks)`` per timing group: ``group_size``
    random networks each, a shipped network joining the group of the random networks before it."""
    groups: list[tuple[int, list[SampledNetwork]]] = []
    n_random = 0  # random networks seen so far
    in_last = 0  # random networks in the last group
    for net in networks:
        shipped = net.model_id is not None
        if not groups or (not shipped and in_last == group_size):
            groups.append((n_random, []))
            in_last = 0
        groups[-1][1].append(net)
        if not shipped:
            n_random += 1
            in_last += 1
    return groups


def evaluate(records: Sequence[NetworkRecord], settings: CheckSettings) -> CheckResult:
    """Split each space's records, fit calibrations on the fit halves, and compute every figure.

    Each space gets its own calibration (its stem, head and glue are its own); ``"global"`` is
    fitted on the fit halves of all spaces together and reported over all held-out networks.
    Shipped records (``model_id`` set) are left out of every fit and every space figure; each gets
    ``split = "shipped"`` and its space's calibrated prediction (:func:`shipped_figures` reports them).
    """
    result = CheckResult(records=list(records))
    by_space: dict[str, list[NetworkRecord]] = {}
    shipped = [r for r in records if r.model_id is not None]
    for r in records:
        if r.model_id is None:
            by_space.setdefault(r.space, []).append(r)
    fit_all: list[NetworkRecord] = []
    for space, recs in sorted(by_space.items()):
        fit_idx, held_idx = split_indices(len(recs), seed=settings.seed, fit_fraction=settings.fit_fraction)
        for i in fit_idx:
            recs[i].split = "fit"
        for i in held_idx:
            recs[i].split = "held_out"
        fit = [recs[i] for i in fit_idx]
        fit_all += fit
        cal = _fit(fit)
        result.calibrations[space] = cal
        for r in recs:
            r.predicted_ms = float(cal.predict(r.sum_ms, r.n_ops))
        result.spaces[space] = _space_figures(recs, cal)
    if len(by_space) > 1:
        cal = _fit(fit_all)
        result.calibrations[GLOBAL] = cal
        result.spaces[GLOBAL] = _space_figures([r for recs in by_space.values() for r in recs], cal)
    for r in shipped:
        r.split = "shipped"
        cal = result.calibrations.get(r.space)
        r.predicted_ms = float(cal.predict(r.sum_ms, r.n_ops)) if cal is not None else float("nan")
    return result


def shipped_figures(records: Sequence[NetworkRecord]) -> dict[str, object]:
    """The shipped networks' figures: each one's measured and predicted ms, and the share within +-10 %.

    Args:
        records: Records as ``evaluate`` left them; only shipped ones (``model_id`` set) are read,
            their ``predicted_ms`` being their space's calibration fitted on its random networks.

    Returns:
        ``{"networks": [...], "n", "within_10pct": {"raw", "calibrated"}, "goal_within_10pct_met",
        "by_space": {space: {"n", "within_10pct": {...}}}}``; shares are None when there is none.
    """
    shipped = [r for r in records if r.model_id is not None]

    def error(pred: float, measured: float) -> float:
        return (pred - measured) / measured * 100.0

    def shares(recs: Sequence[NetworkRecord]) -> dict[str, float | None]:
        if not recs:
            return {"raw": None, "calibrated": None}
        measured = [r.measured_p50_ms for r in recs]
        return {"raw": within([r.sum_ms for r in recs], measured, 10.0),
                "calibrated": within([r.predicted_ms for r in recs], measured, 10.0)}

    networks = [{
        "id": r.model_id,
        "space": r.space,
        "cards": list(r.genotype) if isinstance(r.genotype, dict) else [r.model_id],
        "input_shape": list(r.input_shape),
        "n_ops": r.n_ops,
        "measured_ms": r.measured_p50_ms,
        "predicted_ms_raw": r.sum_ms,
        "predicted_ms_calibrated": r.predicted_ms,
        "error_pct_raw": error(r.sum_ms, r.measured_p50_ms),
        "error_pct_calibrated": error(r.predicted_ms, r.measured_p50_ms),
    } for r in shipped]
    overall = shares(shipped)
    by_space: dict[str, list[NetworkRecord]] = {}
    for r in shipped:
        by_space.setdefault(r.space, []).append(r)
    return {
        "networks": networks,
        "n": len(shipped),
        "within_10pct": overall,
        "goal_within_10pct_met": None if overall["calibrated"] is None
        else bool(overall["calibrated"] >= GOAL_WITHIN_10PCT),
        "by_space": {space: {"n": len(recs), "within_10pct": shares(recs)} for space, recs in sorted(by_space.items())},
    }


def _fit(records: Sequence[NetworkRecord]) -> NetworkCalibration:
    s = [r.sum_ms for r in records]
    n = [r.n_ops for r in records]
    y = [r.measured_p50_ms for r in records]
    # The per-op term needs op counts that vary; with too few networks, fit scale + offset only.
    with_per_op = len(records) >= 6 and len(set(n)) > 1
    return fit_calibration(s, n, y, with_per_op=with_per_op)


def _space_figures(records: Sequence[NetworkRecord], cal: NetworkCalibration) -> dict[str, object]:
    measured = np.array([r.measured_p50_ms for r in records])
    raw = np.array([r.sum_ms for r in records])
    pred = np.array([cal.predict(r.sum_ms, r.n_ops) for r in records])
    fit = np.array([r.split == "fit" for r in records])
    held = ~fit
    held_figs = figures(pred[held], measured[held])
    raw_figs = figures(raw, measured)
    return {
        "networks": len(records),
        "measured_ms": {"min": float(measured.min()), "median": float(np.median(measured)), "max": float(measured.max())},
        "raw": raw_figs,
        "calibrated_fit": figures(pred[fit], measured[fit]),
        "calibrated_held_out": held_figs,
        "calibration": cal.to_dict(),
        "meets_targets": bool(held_figs["mdape_pct"] <= TARGET_MDAPE_PCT
                              and held_figs["kendall_tau"] >= TARGET_KENDALL_TAU),
        "within_10pct_goal": {"min_share": GOAL_WITHIN_10PCT,
                              "raw": bool(raw_figs["within_10pct"] >= GOAL_WITHIN_10PCT),
                              "calibrated_held_out": bool(held_figs["within_10pct"] >= GOAL_WITHIN_10PCT)},
    }


def store_calibration(table: LatencyTable, result: CheckResult, settings: CheckSettings,
                      machine: Mapping[str, object], fitted_on: Mapping[str, object] | None = None) -> None:
    """Write the fitted calibrations and their held-out figures into ``table.meta['calibration']``.

    Spaces this check did not cover keep what an earlier check stored for them. ``fitted_on``: what else says
    how the networks were drawn and sized (the CLI's ``sparse_share``, ``deployment`` and ``preset``), recorded beside
    the timing so the table says how its calibration was fitted.
    """
    doc = dict(table.meta.get("calibration") or {})
    by_space = dict(doc.get("by_space", {}))
    held_out = dict(doc.get("held_out", {}))
    withheld = dict(doc.get("withheld", {}))  # spaces a person set aside (with a reason) until refitted
    for space, cal in result.calibrations.items():
        withheld.pop(space, None)
        by_space[space] = cal.to_dict()
        held_out[space] = result.spaces[space]["calibrated_held_out"]
    doc.update({
        "form": "predicted_ms = scale * sum_ms + per_op_ms * n_ops + offset_ms",
        "n_ops": "number of table ops the network runs (every op but zero)",
        "by_space": by_space,
        "held_out": held_out,
        "withheld": withheld,
        "samples_per_space": settings.samples,
        "fit_fraction": settings.fit_fraction,
        "seed": settings.seed,
        "timing": settings.timing,
        "rounds": settings.rounds if settings.timing == "blocks" else None,
        "machine": dict(machine),
        **dict(fitted_on or {}),
    })
    table.meta["calibration"] = doc
