"""The cross-method figure: Dice vs latency of every evaluated and shipped network, one panel per task.

Echo points are a seg + QC pair per frame; cine points are one inference per clip (a 2D per-frame
model: per frame). Points of different runs were timed in different sessions on the same shared
machine and, for the model cards, at the deployed input size, so the panels show where each
network sits, not differences of a few ms.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from app.realtime import REALTIME
from search.report.sections import MACHINE, ParetoPoint

TASK_TITLES = {"echo": "contrast echo: seg + QC per frame", "cine": "cine MR: one inference (clip or frame)"}
MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")


def pareto_front(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """The points no other point beats on both latency (lower) and Dice (higher), by latency."""
    front, best = [], -math.inf
    for p in sorted((p for p in points if p.valid), key=lambda p: (p.latency_ms, -p.dice, p.label)):
        if p.dice > best:
            front.append(p)
            best = p.dice
    return front


def plot_pareto(points: Sequence[ParetoPoint], path: Path) -> Path | None:
    """Draw one panel per task present in ``points`` into ``path`` (PNG); None when nothing to draw."""
    valid = [p for p in points if p.valid]
    tasks = [t for t in ("echo", "cine") if any(p.task == t for p in valid)]
    if not tasks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    sources = sorted({p.source for p in valid})
    style = {s: (MARKERS[i % len(MARKERS)], f"C{i % 10}") for i, s in enumerate(sources)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(7.0 * len(tasks), 6.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        pts = sorted((p for p in valid if p.task == task), key=lambda p: (p.source, p.label))
        for source in sources:
            sel = [p for p in pts if p.source == source]
            if sel:
                marker, colour = style[source]
                ax.scatter([p.latency_ms for p in sel], [p.dice for p in sel], marker=marker, color=colour, s=36,
                           label=source, zorder=3)
        for p in pts:
            ax.annotate(p.label, (p.latency_ms, p.dice), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(pts)
        ax.plot([p.latency_ms for p in front], [p.dice for p in front], "k--", lw=0.9, label="Pareto front", zorder=2)
        ax.axvline(REALTIME.p95_ms, color="C3", lw=1, ls=":", label=f"{REALTIME.p95_ms:g} ms budget (p95)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"latency, median ms per inference ({MACHINE})", fontsize=8)
        ax.set_ylabel("mean foreground Dice, held-out phantom patients", fontsize=8)
        ax.set_title(TASK_TITLES[task], fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path
