"""Table 2 of the msnas-hw paper beside ours, the issue's targets, and the Dice-latency frontier plot.

The paper: Zeng et al., ICCAD 2020, arXiv:2008.07071.

Input: the per-row result dicts the experiment writes (``rows/<key>/result.json``), each with
``dice`` {per_class {RV, MYO, LV}, mean, std {...}}, ``latency`` {trained, paper_size} (each a
``LatencyStats`` dict plus ``shape``), ``params``, ``flops``. Rows that have not run yet are shown as
such; nothing here measures or trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from app.realtime import REALTIME
from search.methods.msnas_hw.config import MsnasHwConfig

MACHINE = "2-core x86-64 CPU, onnxruntime CPU EP"
CLASS_ORDER = ("LV", "RV", "MYO")  # the paper's column order


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 2 (ACDC, GTX 1080, PyTorch)."""

    lv: float
    rv: float
    myo: float
    mean: float
    fps: float
    latency_ms: float


PAPER_TABLE2: dict[str, PaperRow] = {
    "unet2d_d5_if64": PaperRow(0.911, 0.865, 0.761, 0.846, 16.1, 62),
    "unet2d_d3_if16": PaperRow(0.767, 0.564, 0.738, 0.690, 33.3, 30),
    "unet3d_d4_if32": PaperRow(0.905, 0.855, 0.830, 0.863, 6.4, 157),
    "unet3d_d3_if16": PaperRow(0.886, 0.805, 0.790, 0.827, 17.2, 58),
    "msnas_n4": PaperRow(0.911, 0.873, 0.858, 0.880, 7.2, 139),
    "ours_n2": PaperRow(0.911, 0.865, 0.850, 0.875, 22.2, 45),
    "ours_n1": PaperRow(0.905, 0.856, 0.842, 0.867, 25.6, 39),
}


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def _dice_cell(dice: Mapping[str, Any], cls: str) -> str:
    v = dice.get("per_class", {}).get(cls)
    s = dice.get("std", {}).get(cls)
    return "-" if v is None else (f"{v:.3f}" if s is None else f"{v:.3f}±{s:.3f}")


def _lat(result: Mapping[str, Any], which: str) -> Mapping[str, Any] | None:
    return (result.get("latency") or {}).get(which)


def latency_ms(result: Mapping[str, Any], which: str) -> float:
    """Median latency (ms) of a row at ``which`` (``"trained"`` or ``"paper_size"``), NaN if unmeasured."""
    lat = _lat(result, which)
    return float(lat["p50_ms"]) if lat else float("nan")


def table2_markdown(cfg: MsnasHwConfig, results: Mapping[str, Mapping[str, Any]]) -> str:
    """The paper's Table 2 columns for our rows, with the paper's row under each of ours.

    Args:
        cfg: The run's configuration (row order, shapes).
        results: row key -> result dict (missing rows are printed as not run).
    """
    t, h, w = cfg.data.clip_length, cfg.data.height, cfg.data.width
    pt, ph, pw = cfg.measure.paper_shape
    flops_at = f"{pt}x{ph}x{pw}" if cfg.measure.measure_paper_size else f"{t}x{h}x{w}"
    lines = [
        f"| Method | LV | RV | MYO | Average | TP (FPS) {t}x{h}x{w} | LT (ms) {t}x{h}x{w} | "
        f"TP (FPS) {pt}x{ph}x{pw} | LT (ms) {pt}x{ph}x{pw} | params (trained) | GFLOPs {flops_at} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in cfg.rows:
        res = results.get(row.key)
        paper = PAPER_TABLE2.get(row.key)
        if res is None:
            lines.append(f"| {row.name} (ours) | not run | | | | | | | | | |")
        else:
            dice = res.get("dice", {})
            tr, ps = _lat(res, "trained"), _lat(res, "paper_size")
            mean = dice.get("mean")
            mean_s = dice.get("std", {}).get("mean")
            lines.append(
                f"| {row.name} (ours) | {_dice_cell(dice, 'LV')} | {_dice_cell(dice, 'RV')} | {_dice_cell(dice, 'MYO')} | "
                f"{_f(mean)}{'' if mean_s is None else f'±{mean_s:.3f}'} | "
                f"{_f(tr and tr['fps'], 1)} | {_f(tr and tr['p50_ms'], 1)} | "
                f"{_f(ps and ps['fps'], 1)} | {_f(ps and ps['p50_ms'], 1)} | "
                f"{res.get('params', '-')} | {_f((res.get('flops_paper_size') or float('nan')) / 1e9, 1)} |"
            )
        if paper is not None:
            lines.append(
                f"| *{row.name} (paper, ACDC, GTX 1080)* | *{paper.lv:.3f}* | *{paper.rv:.3f}* | *{paper.myo:.3f}* | "
                f"*{paper.mean:.3f}* | | | *{paper.fps}* | *{paper.latency_ms:g}* | | |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class TargetCheck:
    """One target of the issue, evaluated on our numbers."""

    name: str
    value: float
    limit: float
    met: bool
    note: str = ""

    def line(self) -> str:
        mark = "MET" if self.met else "NOT MET"
        return f"- {self.name}: {self.value:.3f} (limit {self.limit:.3f}) -> **{mark}**{(' - ' + self.note) if self.note else ''}"


def check_targets(cfg: MsnasHwConfig, results: Mapping[str, Mapping[str, Any]], *,
                  which: str = "paper_size") -> list[TargetCheck]:
    """The issue's targets for ours (n=1) against U-net 3D (D3, IF16) and MS-NAS (n=4).

    Latency ratios use ``which`` (the paper-sized architectures at the paper's clip by default, the
    comparison the paper makes); Dice always comes from the trained networks.
    """
    out: list[TargetCheck] = []
    unet, msnas = results.get("unet3d_d3_if16"), results.get("msnas_n4")
    for key, name in (("ours_n1", "ours n=1"), ("ours_n1_pick", "ours n=1 picked")):  # the picked row: --cell-candidates
        ours = results.get(key)
        if ours and unet:
            r = latency_ms(ours, which) / latency_ms(unet, which)
            out.append(TargetCheck(f"latency {name} / U-net 3D (D3, IF16) [{which}]", r, 0.67, r <= 0.67, "paper: 0.67"))
        if ours and msnas:
            r = latency_ms(ours, which) / latency_ms(msnas, which)
            out.append(TargetCheck(f"latency {name} / MS-NAS n=4 [{which}]", r, 0.30, r <= 0.30, "paper: 0.28"))
            d = float(msnas["dice"]["mean"]) - float(ours["dice"]["mean"])
            out.append(TargetCheck(f"mean Dice MS-NAS n=4 - {name}", d, 0.01, d <= 0.01, "paper: 0.013"))
    for key in ("ours_n1", "ours_n2", "ours_n1_pick"):
        res = results.get(key)
        if not res:
            continue
        for w in ("trained", "paper_size"):
            lat = _lat(res, w)
            if not lat:
                continue
            shape = "x".join(str(s) for s in lat.get("shape", ()))
            ok = REALTIME.meets(lat.get("p95_ms"), lat.get("fps"))
            out.append(TargetCheck(f"real time {key} at {shape}: p95 latency ms", lat.get("p95_ms", float("nan")),
                                   REALTIME.p95_ms, ok, f"{lat['fps']:.1f} FPS (need >= {REALTIME.fps:g})"))
    return out


def frontier_points(results: Mapping[str, Mapping[str, Any]], which: str) -> list[tuple[str, float, float]]:
    """``(key, latency ms, mean Dice)`` of every measured row, sorted by latency."""
    pts = [(k, latency_ms(r, which), float(r.get("dice", {}).get("mean", float("nan")))) for k, r in results.items()]
    return sorted((p for p in pts if not math.isnan(p[1])), key=lambda p: p[1])


def pareto(points: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The points no other point beats on both latency (lower) and Dice (higher)."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p[1], -p[2])):
        if p[2] > best:
            front.append(p)
            best = p[2]
    return front


def plot_frontier(cfg: MsnasHwConfig, results: Mapping[str, Mapping[str, Any]], path: Path,
                  extra: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Dice vs latency, one panel per measured input size, with the 50 ms budget drawn.

    Args:
        extra: More measured networks (e.g. width/resolution variants) drawn as grey points.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("trained", "trained networks at %dx%dx%d" % (cfg.data.clip_length, cfg.data.height, cfg.data.width))]
    if cfg.measure.measure_paper_size:
        panels.append(("paper_size", "paper-sized architectures at %dx%dx%d (Dice of their trained twins)"
                       % tuple(cfg.measure.paper_shape)))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), squeeze=False)
    names = {r.key: r.name for r in cfg.rows}
    for ax, (which, title) in zip(axes[0], panels):
        if extra:
            pts = frontier_points(extra, which)
            ax.scatter([p[1] for p in pts], [p[2] for p in pts], c="0.6", s=18, label="variants")
            for k, x, y in pts:
                ax.annotate(k, (x, y), fontsize=6, color="0.4", xytext=(3, -8), textcoords="offset points")
        pts = frontier_points(results, which)
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], c="C0", s=30, zorder=3)
        for k, x, y in pts:
            ax.annotate(names.get(k, k), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = pareto(pts + (frontier_points(extra, which) if extra else []))
        ax.plot([p[1] for p in front], [p[2] for p in front], "C1--", lw=1, label="Pareto front")
        ax.axvline(cfg.measure.realtime_latency_ms, color="C3", lw=1, label="50 ms budget")
        ax.set_xscale("log")
        ax.set_xlabel(f"latency, median ms ({MACHINE})")
        ax.set_ylabel("mean Dice (RV, MYO, LV), held-out patients")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
