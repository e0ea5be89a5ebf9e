"""msnas-hw (Zeng et al., ICCAD 2020, arXiv:2008.07071; Table 2) in the report, from the run folder's per-row results.

The run stores ``config.json`` and ``rows/<key>/result.json`` (Dice, params, and the latency merged
in once measured); rows not trained yet are shown as "not run" by the method's own table function.
"""

from __future__ import annotations

from pathlib import Path

from search.citations import MSNAS_HW
from search.report.sections import (
    MethodSection, ParetoPoint, config_from_dict, figures_in, missing_section, read_json, shown,
)

METHOD = "msnas-hw"
TITLE = f"msnas-hw: hardware-aware multi-scale NAS, 3D cine MR ({MSNAS_HW.cite}; Table 2)"
CAPTIONS = {"frontier": "Dice vs latency of the Table 2 rows (the method's own frontier plot)",
            "genotype_": "Searched cells and paths"}


def load_rows(folder: Path) -> dict[str, dict]:
    """Row key -> stored result of every row trained so far, sorted by key (not the pick's candidates)."""
    from search.train.cine_rows import scored_on_test

    stored = {p.parent.name: read_json(p) for p in sorted(Path(folder).glob("rows/*/result.json"))}
    return {k: r for k, r in stored.items() if scored_on_test(r)}


def load_config(folder: Path):
    """The run's ``MsnasHwConfig``, rebuilt from its ``config.json``."""
    from search.methods.msnas_hw.config import MsnasHwConfig

    return config_from_dict(MsnasHwConfig, read_json(Path(folder) / "config.json"))


def load_section(folder: Path) -> MethodSection:
    """The msnas-hw section: Table 2 beside the paper's, targets, figures, Dice-latency points."""
    folder = Path(folder)
    rows = load_rows(folder) if (folder / "config.json").is_file() else {}
    if not rows:
        detail = f"{shown(folder)} has no trained rows yet (run unfinished)" if folder.is_dir() else ""
        return missing_section(METHOD, TITLE, None, detail)
    from search.methods.msnas_hw import report as method_report

    cfg = load_config(folder)
    t, h, w = cfg.data.clip_length, cfg.data.height, cfg.data.width
    done = [r.key for r in cfg.rows if "latency" in rows.get(r.key, {})]
    section = MethodSection(METHOD, TITLE, folder)
    section.blocks.append(
        f"From `{shown(folder)}` (preset `{cfg.preset}`, seed {cfg.seed}): {len(rows)} of {len(cfg.rows)} rows trained, "
        f"{len(done)} timed. Phantom cine MR, {cfg.data.n_test} held-out patients, clips {t}x{h}x{w}; networks "
        f"{cfg.width_divisor}x narrower than the paper's (the paper-size columns time the full-width architecture "
        f"at {'x'.join(map(str, cfg.measure.paper_shape))}). Latency: median onnxruntime `session.run` per clip on "
        f"a {method_report.MACHINE}, rows interleaved. Italic rows: the paper's Table 2 (ACDC, GTX 1080, PyTorch).")
    section.blocks.append("#### Table 2, ours beside the paper's\n\n" + method_report.table2_markdown(cfg, rows))
    checks, seen = [], set()
    for which in ("paper_size", "trained") if cfg.measure.measure_paper_size else ("trained",):
        for check in method_report.check_targets(cfg, rows, which=which):
            if check.name not in seen:
                seen.add(check.name)
                checks.append(check.line())
    if checks:
        section.blocks.append("#### Targets\n\n" + "\n".join(checks))
    section.figures = figures_in(folder / "report", CAPTIONS)
    names = {r.key: r.name for r in cfg.rows}
    for key, lat_ms, dice in method_report.frontier_points(rows, "trained"):
        section.points.append(ParetoPoint("cine", names.get(key, key), f"msnas-hw run ({t}x{h}x{w} clip)", lat_ms, dice))
    return section
