"""Figures of a searched architecture: the three cells and the fused paths (the paper's Fig. 6).

Cells are drawn as DAGs (v0 = preprocessed input, one box per intermediate node, edges labelled
with their op, the concat output on the right); paths as polylines over the layer x scale grid
(layer on x, scale on y with full resolution on top), one colour per path in selection order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from search.core.genotypes import MULTISCALE_CELL_TYPES, CellGenotype, MultiscaleGenotype

CELL_TITLES = {"ct": "contracting cell (Ct)", "ns": "non-scaling cell (Ns)", "ep": "expanding cell (Ep)"}
OP_COLOURS = {
    "conv": "C0", "dil_conv": "C1", "sep_conv": "C2", "max_pool": "C4", "identity": "C7", "avg_pool": "C5",
}


def _draw_cell(ax, cell: CellGenotype, title: str) -> None:
    n_total = cell.n_inputs + cell.n_nodes
    xs = {i: float(i) for i in range(n_total)}
    ys = {i: (0.0 if i < cell.n_inputs else (0.6 if (i - cell.n_inputs) % 2 == 0 else -0.6)) for i in range(n_total)}
    out_x = float(n_total)
    for e in cell.edges:
        x0, y0, x1, y1 = xs[e.src], ys[e.src], xs[e.dst], ys[e.dst]
        colour = OP_COLOURS.get(e.op, "k")
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color=colour, lw=1.6, connectionstyle="arc3,rad=0.18"))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, e.op, fontsize=7, color=colour, ha="center")
    for node in range(cell.n_inputs, n_total):
        ax.annotate("", xy=(out_x, 0.0), xytext=(xs[node], ys[node]),
                    arrowprops=dict(arrowstyle="->", color="0.75", lw=0.8, ls="--"))
    for node in range(n_total):
        label = f"v{node}" if node >= cell.n_inputs else "v0\n(pre)"
        ax.text(xs[node], ys[node], label, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec="k"))
    ax.text(out_x, 0.0, cell.output, ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="round", fc="0.9", ec="k"))
    ax.set_xlim(-0.6, out_x + 0.6)
    ax.set_ylim(-1.2, 1.2)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _draw_paths(ax, paths: Sequence, n_layers: int, n_scales: int, title: str) -> None:
    for layer in range(n_layers + 1):
        for s in range(n_scales):
            ax.plot(layer, s, "o", color="0.85", ms=5, zorder=1)
    for i, path in enumerate(paths):
        ys = path.scales
        offset = (i - (len(paths) - 1) / 2) * 0.06
        ax.plot([x + offset for x in range(n_layers + 1)], [y + offset for y in ys], "-o", lw=2.2 - 0.3 * i, ms=4,
                color=f"C{i}", label=f"path {i + 1}", zorder=3)
        for layer, kind in enumerate(path.kinds):
            ax.text(layer + 0.5 + offset, (ys[layer] + ys[layer + 1]) / 2 + offset + 0.12, kind, fontsize=6,
                    color=f"C{i}", ha="center")
    ax.set_xticks(range(n_layers + 1))
    ax.set_yticks(range(n_scales))
    ax.set_yticklabels([f"1/{2 ** s}" for s in range(n_scales)])
    ax.invert_yaxis()
    ax.set_xlabel("layer")
    ax.set_ylabel("scale (H, W resolution)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")


def draw_genotype(genotype: MultiscaleGenotype, path: Path, title: str = "") -> Path:
    """Draw the three cells (top) and the fused paths (bottom) into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 6.5))
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 1.3])
    for col, kind in enumerate(("ct", "ns", "ep")):
        _draw_cell(fig.add_subplot(grid[0, col]), genotype.cells[kind], CELL_TITLES[kind])
    _draw_paths(fig.add_subplot(grid[1, :]), genotype.paths, genotype.n_layers, genotype.n_scales,
                f"fused paths (n = {len(genotype.paths)}), outputs upsampled to full resolution and summed")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def describe_genotype(genotype: MultiscaleGenotype) -> str:
    """Plain-text form of the cells and paths (for the report)."""
    lines = []
    for kind in MULTISCALE_CELL_TYPES:
        cell = genotype.cells[kind]
        edges = ", ".join(f"v{e.src}->v{e.dst}:{e.op}" for e in cell.edges)
        lines.append(f"- {CELL_TITLES[kind]}: {edges}; output {cell.output}")
    for i, p in enumerate(genotype.paths):
        lines.append(f"- path {i + 1}: {' '.join(p.kinds)} (scales {'-'.join(str(s) for s in p.scales)})")
    return "\n".join(lines)
