"""Figures of the segqc-hw report: predicted vs true Dice on test patients, and the searched cells.

matplotlib only (Agg backend, no display); every figure is a PNG written to the given path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from search.core.genotypes import CellGenotype, SegQcGenotype, SkeletonQcGenotype

BIN_COLOURS = {"good": "#2a9d8f", "medium": "#e9c46a", "poor": "#e76f51", "": "#264653"}
INPUT_NAMES = {1: ("c_{k-1}",), 2: ("c_{k-2}", "c_{k-1}"), 3: ("c_{k-2}", "c_{k-1}", "skip")}
OP_COLOURS = {"conv": "#1d3557", "dil_conv": "#457b9d", "sep_conv": "#2a9d8f", "max_pool": "#e76f51",
              "avg_pool": "#f4a261", "identity": "#6c757d"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scatter_predicted_vs_true(rows: Mapping[str, Sequence[dict]], path: Path, title: str) -> None:
    """One panel per row: predicted vs true Dice of every test frame, coloured by quality bin.

    Args:
        rows: row name -> frames ``{"true", "predicted", "quality_bin"}``.
        path: PNG to write.
        title: Figure title (names the data and the machine).
    """
    import numpy as np

    from app.metrics import qc_calibration

    plt = _pyplot()
    n = len(rows)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 4.2), squeeze=False)
    for ax, (name, frames) in zip(axes[0], rows.items()):
        for b in ("poor", "medium", "good", ""):
            sel = [f for f in frames if f.get("quality_bin", "") == b]
            if sel:
                ax.scatter([f["true"] for f in sel], [f["predicted"] for f in sel], s=12, alpha=0.75,
                           color=BIN_COLOURS[b], label=b or "unknown", edgecolors="none")
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
        cal = qc_calibration([f["predicted"] for f in frames], [f["true"] for f in frames])
        label = name.replace(", sensitivity", ",\nsensitivity")
        ax.set_title(f"{label}\nMAE {cal['qc_mae']:.3f}, r {cal['qc_pearson']:.2f}", fontsize=9)
        lo = min([0.5] + [min(f["true"], f["predicted"]) for f in frames])
        lo = float(np.floor(lo * 10) / 10)
        ax.set_xlim(lo, 1.0), ax.set_ylim(lo, 1.0)
        ax.set_xlabel("true Dice")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("predicted Dice (QC)")
    axes[0][0].legend(fontsize=7, title="quality", title_fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def short_op(name: str) -> str:
    """Compact edge label: ``down_sep_conv`` -> ``v sep``, ``up_conv`` -> ``^ conv``, ``identity`` -> ``id``."""
    base = name.removeprefix("down_").removeprefix("up_")
    base = {"dil_conv": "dil", "sep_conv": "sep", "max_pool": "max", "avg_pool": "avg", "identity": "id"}.get(base, base)
    if name.startswith("down_"):
        return "\u2193" + base
    if name.startswith("up_"):
        return "\u2191" + base
    return base


def _draw_cell(ax, cell: CellGenotype, title: str) -> None:
    """Draw one cell: inputs on the left, intermediate nodes in a staircase, the summed output right.

    Edges are quadratic arcs coloured by op; each label sits at its arc's midpoint.
    """
    names = INPUT_NAMES.get(cell.n_inputs, tuple(f"in{i}" for i in range(cell.n_inputs)))
    pos: dict[int, tuple[float, float]] = {}
    for i in range(cell.n_inputs):
        pos[i] = (0.0, 1.6 * ((cell.n_inputs - 1) / 2 - i))
    for j in range(cell.n_nodes):
        pos[cell.n_inputs + j] = (2.4 + 2.0 * j, 1.3 - 1.3 * j)
    out = (2.4 + 2.0 * cell.n_nodes + 0.4, -0.2)
    for k, e in enumerate(cell.edges):
        (x0, y0), (x1, y1) = pos[e.src], pos[e.dst]
        rad = 0.18 if k % 2 == 0 else -0.18
        colour = OP_COLOURS.get(e.op.removeprefix("down_").removeprefix("up_"), "k")
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.3, shrinkA=10, shrinkB=10,
                                    connectionstyle=f"arc3,rad={rad}"))
        # midpoint of matplotlib's arc3 quadratic Bezier: chord midpoint + rad / 2 * (dy, -dx)
        mx, my = (x0 + x1) / 2 + rad / 2 * (y1 - y0), (y0 + y1) / 2 - rad / 2 * (x1 - x0)
        ax.text(mx, my, short_op(e.op), fontsize=6.5, ha="center", va="center", color=colour,
                bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.9))
    for j in range(cell.n_nodes):
        ax.annotate("", xy=out, xytext=pos[cell.n_inputs + j],
                    arrowprops=dict(arrowstyle="-|>", color="0.65", lw=0.7, ls="--", shrinkA=10, shrinkB=12))
    for i, (x, y) in pos.items():
        label = f"${names[i]}$" if i < cell.n_inputs else str(i - cell.n_inputs)
        face = "#dee2e6" if i < cell.n_inputs else "#a8dadc"
        ax.text(x, y, label, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="circle,pad=0.3" if i >= cell.n_inputs else "round,pad=0.3", fc=face, ec="k", lw=0.6))
    ax.text(*out, "sum", ha="center", va="center", fontsize=8, bbox=dict(boxstyle="round,pad=0.3", fc="#ffd166", ec="k", lw=0.6))
    ax.set_xlim(-0.8, out[0] + 0.8)
    ax.set_ylim(-2.2, 2.2)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def draw_genotype(genotype: SegQcGenotype | SkeletonQcGenotype, path: Path, title: str) -> None:
    """The four searched cells (seg Down / Up, QC Contracting / Non-scaling) in one PNG; a skeleton-space pair
    (``SkeletonQcGenotype``) has no seg cells, so its two QC cells alone (its U is the spec in ``title``)."""
    plt = _pyplot()
    qc_cells = [(genotype.qc.contracting, "QC: Contracting cell"), (genotype.qc.nonscaling, "QC: Non-scaling cell")]
    if isinstance(genotype, SkeletonQcGenotype):
        fig, axes = plt.subplots(1, 2, figsize=(10, 2.9))
        cells = qc_cells
    else:
        fig, axes = plt.subplots(2, 2, figsize=(10, 5.6))
        cells = [(genotype.seg.down, "segmentation: Down cell"), (genotype.seg.up, "segmentation: Up cell"), *qc_cells]
    for ax, (cell, name) in zip(axes.flat, cells):
        _draw_cell(ax, cell, name)
    fig.suptitle(title + "\n(\u2193 stride-2 down op, \u2191 x2 transposed-conv up op; dil = dilated conv, "
                 "sep = separable conv, max / avg = pooling, id = identity)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
