"""segqc-hw (seed 000, Table II) in the report, from the run's ``report/results.json``.

The tables come from the method's own report functions (``search.methods.segqc_hw.report``), so
the report and the method's README cannot disagree; the figures are the PNGs the method drew.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from search.report.sections import MethodSection, ParetoPoint, figures_in, fmt, missing_section, read_json, shown

log = logging.getLogger(__name__)
METHOD = "segqc-hw"
TITLE = "segqc-hw: joint segmentation + QC search, contrast echo (seed 000, Table II)"
CAPTIONS = {"qc_scatter": "QC: predicted vs true Dice of every test frame, per row",
            "cells_searched_hw": "Searched cells, hardware-aware (lambda2 > 0)",
            "cells_searched_nohw": "Searched cells, without the latency term (lambda2 = 0)"}


def find_results(candidates: Sequence[Path], preset: str) -> Path | None:
    """The first ``results.json`` among ``candidates`` (run folder, its ``report/``, or a docs copy)
    whose stored config is of ``preset``."""
    for folder in candidates:
        for path in (Path(folder) / "results.json", Path(folder) / "report" / "results.json"):
            if path.is_file():
                stored = read_json(path).get("config", {}).get("preset")
                if stored == preset:
                    return path
                log.info("%s: preset %r, not %r; skipped", path, stored, preset)
    return None


def load_section(candidates: Sequence[Path], preset: str) -> MethodSection:
    """The segqc-hw section: Table II beside the paper's, targets, per-bin table, figures, points."""
    path = find_results(candidates, preset)
    if path is None:
        existing = [str(c) for c in candidates if Path(c).is_dir()]
        detail = f"{shown(Path(existing[0]))} has no results.json yet (run unfinished)" if existing else ""
        return missing_section(METHOD, TITLE, None, detail)
    from search.methods.segqc_hw import report as method_report

    results = read_json(path)
    cfg = results["config"]
    section = MethodSection(METHOD, TITLE, path.parent)
    section.blocks.append(
        f"From `{shown(path)}` (preset `{cfg['preset']}`, seed {cfg['seed']}). Phantom contrast echo, "
        f"{cfg['data']['n_test']} held-out test patients ({results['n_test_frames']} frames); latency = seg + QC "
        f"per frame at {cfg['measure']['resolution']}x{cfg['measure']['resolution']}, median of "
        f"{cfg['measure']['timed_runs']} interleaved rounds on {results['machine']}. The paper's columns: "
        "seed 000's Table II (4-core Intel i7, its own MCE data).")
    section.blocks.append("#### Table II, ours beside the paper's\n\n" + method_report.table_markdown(results))
    targets = results.get("targets") or method_report.targets(results)
    lines = ["| target | measured | threshold | met | margin |", "|---|---|---|---|---|"]
    for t in targets:
        lines.append(f"| {t['target']} | {fmt(t['value'])} | {t['threshold']} | "
                     f"{'yes' if t['met'] else 'NO'} | {fmt(t['by'])} |")
    section.blocks.append("#### Targets\n\n" + "\n".join(lines))
    bins = method_report.bins_markdown(results)
    if bins.count("\n") > 1:
        section.blocks.append("#### Per acquisition-quality bin (test patients)\n\n" + bins)
    section.figures = figures_in(path.parent, CAPTIONS)
    for key in method_report.ROWS:
        row = results["rows"].get(key)
        if row is None:
            continue
        section.points.append(ParetoPoint("echo", method_report.ROW_NAMES[key], "segqc-hw run (seg + QC)",
                                          float(row["cost"]["latency_ms"]), float(row["test"]["dice_mean"])))
    return section
