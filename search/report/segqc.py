"""segqc-hw (Zeng et al. 2021, arXiv:2109.06909; Table II) in the report, from the run's ``report/results.json``.

The tables come from the method's own report functions (``search.methods.segqc_hw.report``), so
the report and the method's README cannot disagree; the figures are the PNGs the method drew.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from search.citations import SEGQC_HW
from search.report.sections import MethodSection, ParetoPoint, figures_in, fmt, missing_section, read_json, shown

log = logging.getLogger(__name__)
METHOD = "segqc-hw"
TITLE = f"segqc-hw: joint segmentation + QC search, contrast echo ({SEGQC_HW.cite}; Table II)"
CAPTIONS = {"qc_scatter": "QC: predicted vs true Dice of every test frame, per row", "cells_": "Searched cells"}


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
        "the paper's Table II (4-core Intel i7, its own MCE data).")
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
    sensitivity = results.get("sensitivity") or {}
    if sensitivity and hasattr(method_report, "sensitivity_markdown"):
        section.blocks.append("#### Latency weight sensitivity (not in the paper; same harness and process)\n\n"
                              + method_report.sensitivity_markdown(results))
    if results.get("controls") and hasattr(method_report, "random_control_markdown"):
        section.blocks.append("#### Searched vs a random genotype of the same predicted latency (same harness and "
                              "process)\n\n" + method_report.random_control_markdown(results))
    if results.get("export") and hasattr(method_report, "export_markdown"):
        section.blocks.append("#### Shipped pair\n\n" + method_report.export_markdown(results["export"]))
    name = getattr(method_report, "row_name", lambda key: method_report.ROW_NAMES.get(key, key))
    captions = {f"cells_{key}": f"Searched cells, {name(key)}" for key in (*results["rows"], *sensitivity)}
    section.figures = figures_in(path.parent, {**captions, **CAPTIONS})
    size = f"{cfg['measure']['resolution']}x{cfg['measure']['resolution']}"
    for key, row in [*((k, results["rows"][k]) for k in method_report.ROWS if k in results["rows"]), *sensitivity.items()]:
        section.points.append(ParetoPoint("echo", name(key), f"segqc-hw run (seg + QC, {size})",
                                          float(row["cost"]["latency_ms"]), float(row["test"]["dice_mean"])))
    return section
