"""rtdnas (Lu et al., MICCAI 2022, arXiv:2206.04682; Tables 1 and 2) in the report, from the run folder's stored stages.

The run stores ``rows/<key>/result.json`` (Dice), ``latency.json`` (timings by row key),
``derivation.json`` (top-weight and GA paths per N_l with their lookup-table latency) and
``rounds/r<k>/result.json``. A GA network identical to its top-weight twin is trained once and has
no folder of its own; it is restored from the derivation here, as the method does in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.realtime import REALTIME
from search.citations import RTDNAS
from search.core.genotypes import MultiscaleGenotype
from search.report.sections import (
    MACHINE, MethodSection, ParetoPoint, config_from_dict, figures_in, missing_section, read_json, shown,
)

METHOD = "rtdnas"
TITLE = (f"rtdnas: real-time constrained search with genetic path selection, 3D cine MR ({RTDNAS.cite}; "
         "Tables 1 and 2)")
log = logging.getLogger(__name__)
CAPTIONS = {"fig2": "Fig. 2: Dice vs latency and vs throughput (random cloud, top-weight, GA, msnas-hw rows)"}


def _optional_json(path: Path) -> dict[str, Any]:
    """The JSON document at ``path``, or ``{}`` when the run has not written it (yet)."""
    return read_json(path) if path.is_file() else {}


def load_rows(folder: Path, derivation: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(rows, cloud)``: searched networks (``tw_n<N>``, ``ga_n<N>``) and random ones (``cloud_<i>``),
    each with ``latency`` (or None), ``lut_ms`` and ``same_network_as`` where they apply (``derivation``: the
    folder's ``derivation.json`` when the caller has read it already)."""
    folder = Path(folder)
    stored = {p.parent.name: read_json(p) for p in sorted(folder.glob("rows/*/result.json"))}
    latency = _optional_json(folder / "latency.json")
    if derivation is None:
        derivation = _optional_json(folder / "derivation.json")
    for n, d in derivation.get("by_n", {}).items():
        tw, ga = f"tw_n{n}", f"ga_n{n}"
        if tw in stored:
            stored[tw]["lut_ms"] = d.get("top_weight_latency_ms")
        if ga in stored:
            stored[ga]["lut_ms"] = d.get("latency_ms")
        elif tw in stored and list(d.get("best", ())) == list(d.get("top_weight", ())):
            stored[ga] = {**stored[tw], "key": ga, "same_network_as": tw, "lut_ms": d.get("latency_ms")}
    for key, r in stored.items():
        r["latency"] = latency.get(r.get("same_network_as", key))
    # searched rows only: not the cloud, nor the pick's candidates (rows/pick_c*, scored on validation patients)
    rows = {k: v for k, v in sorted(stored.items()) if k.startswith(("tw_", "ga_"))}
    cloud = {k: v for k, v in sorted(stored.items()) if k.startswith("cloud_")}
    return rows, cloud


def load_section(folder: Path, msnas_folder: Path | None) -> MethodSection:
    """The rtdnas section: constraint rounds, Table 1 and Table 2 beside the paper's, targets, Fig. 2."""
    folder = Path(folder)
    derivation = _optional_json(folder / "derivation.json")
    rows, cloud = load_rows(folder, derivation) if (folder / "config.json").is_file() else ({}, {})
    if not rows:
        detail = f"{shown(folder)} has no retrained networks yet (run unfinished)" if folder.is_dir() else ""
        return missing_section(METHOD, TITLE, None, detail)
    from search.methods.rtdnas import report as method_report
    from search.methods.rtdnas.config import RtdnasConfig
    from search.methods.rtdnas.experiment import RtdnasExperiment

    cfg = config_from_dict(RtdnasConfig, read_json(folder / "config.json"))
    experiment = RtdnasExperiment(cfg, folder, msnas_dir=msnas_folder)  # only its readers are used
    baselines, rounds = experiment.baselines(), experiment.rounds_summary()
    timed = sum(1 for r in rows.values() if r.get("latency"))
    section = MethodSection(METHOD, TITLE, folder)
    msnas_shown = shown(msnas_folder) if msnas_folder else "-"
    section.blocks.append(
        f"From `{shown(folder)}` (preset `{cfg.preset}`, seed {cfg.seed}): {len(rows)} searched networks "
        f"({timed} timed), {len(cloud)} random ones; Table 2's baselines are msnas-hw's rows from "
        f"`{msnas_shown}`{'' if baselines else ' (none stored yet)'}. Latency: median onnxruntime run per "
        f"{cfg.data.clip_length}x{cfg.data.height}x{cfg.data.width} clip on a {MACHINE}; the paper's "
        "figures: the RT-DNAS paper (P100 GPU, ACDC).")
    if rounds:
        section.blocks.append(f"#### Constraint rounds ({REALTIME.describe()})\n\n" + method_report.rounds_markdown(rounds))
    section.blocks.append("#### Table 1: top-weight vs GA on the same searched cells, ours and the paper's"
                          + method_report.table1_pool_words(derivation) + "\n\n"
                          + method_report.table1_markdown(cfg, rows))
    section.blocks.append("#### Table 2: ours and msnas-hw's baselines (same data, clips, machine)\n\n"
                          + method_report.table2_markdown(cfg, rows, baselines))
    section.blocks.append("#### Table 2 of the paper (RT-DNAS: P100, ACDC)\n\n" + paper_table2(method_report.PAPER_TABLE2))
    section.blocks.append("#### Targets\n\n" + "\n".join(method_report.check_targets(cfg, rows, baselines)))
    section.figures = figures_in(folder / "report", CAPTIONS)
    best = best_network(cfg, rows)
    if best is not None:
        key, r = best
        try:
            genotype = MultiscaleGenotype.from_dict(dict(r["genotype"]))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: genotype of %s not drawable (%s)", folder, key, exc)
        else:
            section.drawings.append((f"Searched cells and GA paths of {r.get('name', key)} (`{key}`), drawn with "
                                     "msnas-hw's drawing code", f"cells_{key}.png", _drawer(genotype, f"rtdnas {key}")))
    shape = f"{cfg.data.clip_length}x{cfg.data.height}x{cfg.data.width} clip"
    for key, r in rows.items():
        lat = r.get("latency") or {}
        if r.get("same_network_as") or "p50_ms" not in lat:
            continue
        kind = "GA" if key.startswith("ga_") else "top-weight"
        section.points.append(ParetoPoint("cine", f"RT-DNAS {kind} N_l={key.split('_n')[-1]}", f"rtdnas run ({shape})",
                                          float(lat["p50_ms"]), float(r["dice"]["mean"])))
    return section


def paper_table2(table: dict[str, tuple]) -> str:
    """The RT-DNAS paper's Table 2 as a Markdown table (RV, MYO, LV, average Dice, LT ms, TP FPS)."""
    lines = ["| network | RV | MYO | LV | average | LT (ms) | TP (FPS) |", "|---|---|---|---|---|---|---|"]
    for name, (rv, myo, lv, avg, lt, tp) in table.items():
        lines.append(f"| *{name}* | *{rv:.3f}* | *{myo:.3f}* | *{lv:.3f}* | *{avg:.3f}* | *{lt}* | *{tp}* |")
    return "\n".join(lines)


def best_network(cfg, rows: dict[str, Any]) -> tuple[str, dict] | None:
    """The GA network with the best mean Dice among those meeting 50 ms / 22 FPS (else among all)."""
    from search.methods.rtdnas.report import meets

    ga = [(k, r) for k, r in rows.items() if k.startswith("ga_") and r.get("genotype") and r.get("dice")]
    pool = [(k, r) for k, r in ga if meets(cfg, r)] or ga
    return max(pool, key=lambda kr: (kr[1]["dice"].get("mean", -1.0), kr[0]), default=None)


def _drawer(genotype: MultiscaleGenotype, title: str):
    def draw(path: Path) -> None:
        from search.methods.msnas_hw.drawing import draw_genotype

        draw_genotype(genotype, path, title=title)

    return draw
