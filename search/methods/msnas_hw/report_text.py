"""The Markdown report of one ``msnas-hw`` run (every number in it is read from the run's files)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from search.core.genotypes import MultiscaleGenotype
from search.methods.msnas_hw import report
from search.methods.msnas_hw.config import MsnasHwConfig
from search.methods.msnas_hw.drawing import describe_genotype
from search.train.restart_report import rows_restarts_markdown


def _shape(s) -> str:
    return "x".join(str(int(v)) for v in s)


def _efficiency_lines(cfg: MsnasHwConfig, results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Achieved GFLOP/s per row at the paper size: what limits latency on this CPU."""
    out = ["| Method | GFLOPs / clip | latency ms | achieved GFLOP/s |", "|---|---|---|---|"]
    for row in cfg.rows:
        res = results.get(row.key)
        if not res:
            continue
        flops = res.get("flops_paper_size")
        lat = report.latency_ms(res, "paper_size" if cfg.measure.measure_paper_size else "trained")
        if not flops or math.isnan(lat):
            continue
        out.append(f"| {row.name} | {flops / 1e9:.1f} | {lat:.1f} | {flops / 1e9 / (lat / 1e3):.1f} |")
    return out


def arch_movement(arch: dict) -> dict[str, float]:
    """How far a search moved its architecture weights from their (uniform) initialisation.

    Args:
        arch: ``space.arch_summary`` of the supernet: ``beta_probs`` ``(L, S, 4)`` (0 where an edge is
            unavailable) and per cell type ``edges[*].op_probs``.

    Returns:
        ``beta_max_mean`` / ``beta_uniform_mean``: mean over vertices with >= 2 edges of the largest
        edge probability and of ``1 / edges``; ``beta_max``: the largest edge probability;
        ``alpha_max_mean``, ``alpha_max``, ``alpha_uniform``: the same for the op probabilities.
    """
    beta = np.asarray(arch["beta_probs"], dtype=float).reshape(-1, np.asarray(arch["beta_probs"]).shape[-1])
    avail = (beta > 0).sum(axis=1)
    keep = avail >= 2
    ops = [e["op_probs"] for cell in arch["cells"].values() for e in cell["edges"]]
    op_max = np.array([max(p) for p in ops]) if ops else np.array([float("nan")])
    return {
        "beta_max_mean": float(beta[keep].max(axis=1).mean()),
        "beta_uniform_mean": float((1.0 / avail[keep]).mean()),
        "beta_max": float(beta[keep].max()),
        "alpha_max_mean": float(op_max.mean()),
        "alpha_max": float(op_max.max()),
        "alpha_uniform": 1.0 / len(ops[0]) if ops else float("nan"),
    }


def render_report(cfg: MsnasHwConfig, results: Mapping[str, Mapping[str, Any]],
                  genotypes: Mapping[str, Mapping[int, MultiscaleGenotype]], searches: Mapping[str, Mapping[str, Any]],
                  figures: Mapping[tuple[str, int], str],
                  variants: Mapping[str, Mapping[str, Any]] | None = None,
                  lut_predictions: Mapping[str, float] | None = None) -> str:
    """The report text.

    Args:
        cfg: Run configuration.
        results: row key -> row result (with latency merged in).
        genotypes: search key -> n -> decoded genotype.
        searches: search key -> the search's result.json.
        figures: (search key, n) -> figure file name (beside the report).
        variants: Latency-only deployment variants (``variants.json``), if measured.
        lut_predictions: row key -> the lookup table's plain-sum prediction for its trained network.
    """
    t, h, w = cfg.data.clip_length, cfg.data.height, cfg.data.width
    paper = _shape(cfg.measure.paper_shape)
    lines = [
        "# msnas-hw: hardware-aware multi-scale NAS for 3D cine MR (Zeng et al., ICCAD 2020, arXiv:2008.07071), Table 2 on our data and CPU",
        "",
        f"Preset `{cfg.preset}` (`python -m search msnas-hw --preset {cfg.preset} --seed {cfg.seed}`). "
        f"Data: {cfg.data.n_patients} phantom cine patients (`app.data.phantom`, seed {cfg.data.seed}), split by patient: "
        f"{cfg.data.n_test} held out for testing, the rest 1:1 into weight / architecture sets for the searches "
        f"and all of them for retraining. Clips: {t} frames of one short-axis slice at {h}x{w} "
        f"(the paper: 20x128x112). Every row is trained from scratch with the same harness and schedule "
        f"({cfg.retrain.steps} Adam steps, batch {cfg.retrain.batch_size}, CE + soft Dice).",
        "",
        f"Latency: median of `session.run` on one clip (all {t} frames; 2D U-nets get the clip's frames as one batch, "
        f"as the paper's FPS = 1000 / LT implies), onnxruntime CPU EP with the app's session settings, all rows "
        f"interleaved round-robin in one process, on a {report.MACHINE}. TP = 1000 / mean latency (sequential).",
        "",
    ]
    if cfg.width_divisor > 1:
        lines += [
            f"**Scaled down** (2 shared CPU cores): every trained network is {cfg.width_divisor}x narrower than its "
            f"paper configuration (U-net IF / {cfg.width_divisor}, searched nets C = {cfg.trained_channels} at scale 0 "
            f"instead of {cfg.supernet.channels}), and trained on {t}x{h}x{w} clips. Dice and the first latency pair "
            f"come from these trained networks; the second latency pair times the paper-sized architecture (same depth, "
            f"same searched cells and paths, full widths) at {paper} (weights do not change the cost).",
            "",
        ]
    lines += ["## Table 2", "", report.table2_markdown(cfg, results), ""]
    lines += ["## Row trainings that collapsed", "", rows_restarts_markdown(results, cfg.retrain.restart_floor, cfg.retrain.seg_restarts), ""]
    frame_notes = []
    for row in cfg.rows:
        res = results.get(row.key) or {}
        pf = res.get("latency_per_frame") or {}
        parts = [f"{_shape(v['shape'])}: {v['p50_ms']:.1f} ms" for v in pf.values() if v]
        if parts:
            frame_notes.append(f"- {row.name}, newest frame only (deployed per frame): " + ", ".join(parts))
    if frame_notes:
        lines += ["Per-frame latency of the 2D U-nets (what a per-frame deployment pays per new frame):", "", *frame_notes, ""]
    lines += ["## Targets of the issue", ""]
    seen: set[str] = set()
    for which in (("paper_size", "trained") if cfg.measure.measure_paper_size else ("trained",)):
        for check in report.check_targets(cfg, results, which=which):
            if check.name not in seen:
                seen.add(check.name)
                lines.append(check.line())
    lines += [""]
    lines += ["## Dice-latency frontier", "", "![frontier](frontier.png)", ""]
    eff = _efficiency_lines(cfg, results)
    if len(eff) > 2:
        lines += ["What limits latency on this CPU (FLOPs counted by torch, 2 per multiply-accumulate):", "", *eff, ""]
    if variants:
        from search.methods.msnas_hw.variants import variants_markdown

        lines += ["Deployment variants (latency only, same process, untrained weights: the cost of width and "
                  "clip size for the searched nets, and the small U-net 3D (D2, IF8) the issue quotes):", "",
                  variants_markdown(cfg, variants), ""]
    if lut_predictions:
        lines += ["Lookup table vs measurement (trained searched networks at their clip; the table sums every op "
                  "measured alone, minus the session overhead):", "",
                  "| Method | LUT sum ms | measured ms (p50) | measured / LUT |", "|---|---|---|---|"]
        for row in cfg.rows:
            pred = lut_predictions.get(row.key)
            meas = report.latency_ms(results.get(row.key) or {}, "trained")
            if pred is not None and not math.isnan(meas):
                lines.append(f"| {row.name} | {pred:.1f} | {meas:.1f} | {meas / pred:.2f} |")
        lines += [""]
    lines += ["## Searches", ""]
    for key, doc in searches.items():
        hist = doc.get("history", [])
        last = [r for r in hist if r.get("phase") == "search"][-5:]
        lat = [r["latency_ms"] for r in last if r.get("latency_ms") == r.get("latency_ms")]
        lines.append(f"### search `{key}` (latency term: {'yes, top-' + str(doc['search']['n_paths']) + ' paths' if doc['search']['latency_aware'] else 'no (MS-NAS)'})")
        lines.append("")
        lines.append(f"{len(hist)} steps in {doc.get('seconds', float('nan')):.0f} s; final weight-set CE "
                     f"{hist[-1]['weight_ce']:.3f}" + (f", E[LAT] of the last steps {sum(lat) / len(lat):.1f} ms" if lat else "")
                     + "." if hist else "no steps")
        sc = cfg.search
        lines.append(f"- schedule: {sc.warmup_steps} weight-only + {sc.search_steps} alternating steps, batch {sc.batch_size} "
                     f"of {_shape(sc.proxy_clip) if sc.proxy_clip else 'training'} proxy clips, architecture Adam lr "
                     f"{sc.arch_lr:g}, lambda {sc.latency_lambda:g}" if doc["search"]["latency_aware"] else
                     f"- schedule: {sc.warmup_steps} weight-only + {sc.search_steps} alternating steps, batch {sc.batch_size} "
                     f"of {_shape(sc.proxy_clip) if sc.proxy_clip else 'training'} proxy clips, architecture Adam lr "
                     f"{sc.arch_lr:g}, no latency term")
        if "arch" in doc:
            mv = arch_movement(doc["arch"])
            lines.append(f"- how far the architecture moved from uniform: network level beta, mean max probability per "
                         f"vertex {mv['beta_max_mean']:.2f} (uniform {mv['beta_uniform_mean']:.2f}), largest "
                         f"{mv['beta_max']:.2f}; cell level alpha, mean max op probability per edge "
                         f"{mv['alpha_max_mean']:.2f} (uniform {mv['alpha_uniform']:.2f}), largest {mv['alpha_max']:.2f}")
        for n, ms in doc.get("expected_latency_ms", {}).items():
            lines.append(f"- expected top-{n} path-wise latency at the end of the search (softmax weights, eq. 7-9): {ms:.1f} ms")
        lines.append("")
        for n, g in sorted(genotypes.get(key, {}).items()):
            lines += [f"Decoded, n = {n}:", "", describe_genotype(g), "", f"![{key} n={n}]({figures[(key, n)]})", ""]
    lines += [
        "## Deviations from the paper",
        "",
        "- Data: phantom cine MR with exact labels instead of ACDC (not redistributable); Dice over every frame of "
        "every clip of the held-out patients (the paper: ED/ES frames on the ACDC server, 5-fold CV).",
        "- Scaling in the network-level grid acts on H and W only (time is never pooled: a 20-frame clip must give 20 "
        "masks and 20 is not divisible by 8; `search.core.ops`).",
        "- Latency target is this CPU with onnxruntime (the paper: a GTX 1080 with PyTorch). LAT in ms as in the paper; "
        f"lambda = {cfg.search.latency_lambda:g} (the paper: 1e-4"
        + (")." if cfg.search.latency_lambda == 1e-4 else "; with ~100x fewer architecture steps the paper's lambda "
           "gives a latency gradient of ~5% of the cross-entropy gradient noise, see `config.py`)."),
        "- The path-wise latency sums the top-n paths as the paper does (eq. 9); on a 2-core CPU the paths do not run in "
        "parallel, so a sum over paths is also the right model of the fused network's cost.",
    ]
    if cfg.preset != "paper":
        lines.append("- Schedules are counted in optimiser steps and much shorter than the paper's 30 + 30 search "
                     "epochs (see `search/methods/msnas_hw/config.py`).")
    return "\n".join(lines) + "\n"


def pick_section(doc: Mapping[str, Any] | None) -> str:
    """A report section on the candidate pick of ours n=1 (``pick.json``); empty without one."""
    if not doc:
        return ""
    lines = ["", "## The pick of ours n=1 (`--cell-candidates`)", "",
             f"Rule: {doc['rule']}. Picked: candidate {doc['picked']} ({doc['why']}).", "",
             "| candidate | cells | path | LUT ms | within bound | Dice, short training | params |", "|---|---|---|---|---|---|---|"]
    for c in doc["candidates"]:
        dice = f"{c['val_dice']:.3f}" if "val_dice" in c else "-"
        params = f"{c['params']:,}" if "params" in c else "-"
        mark = " **(picked)**" if c["index"] == doc["picked"] else ""
        lines.append(f"| {c['index']}{mark} | {c['source']} | {c['path']} | {c['lut_ms']:.1f} | "
                     f"{'yes' if c['within_bound'] else 'no'} | {dice} | {params} |")
    return "\n".join(lines) + "\n"


def measurement_conditions(latency_doc: Mapping[str, Any]) -> str:
    """A report section with the machine load recorded around each latency measurement (``latency.json``)."""
    loads = {k[: -len("_load")]: v for k, v in latency_doc.items() if k.endswith("_load")}
    if not loads:
        return ""
    lines = ["", "## Measurement conditions", "",
             f"The machine ({report.MACHINE}) was shared with other jobs; 1-minute load average around each "
             "latency measurement (a load above the core count means the timings include waiting for a core):", ""]
    for which, v in loads.items():
        lines.append(f"- {which}: {v['loadavg_1min_before']:.1f} before, {v['loadavg_1min_after']:.1f} after, "
                     f"{v['cpu_count']} cores")
    return "\n".join(lines) + "\n"


def results_summary(cfg: MsnasHwConfig, results: Mapping[str, Mapping[str, Any]], searches: Mapping[str, Mapping[str, Any]],
                    variants: Mapping[str, Any] | None, lut_predictions: Mapping[str, float] | None,
                    latency_doc: Mapping[str, Any]) -> dict[str, Any]:
    """The report's numbers as plain JSON (``results.json``): rows, the paper's rows, targets, searches.

    Every value is copied from the run's files; nothing is measured here.
    """
    from dataclasses import asdict

    from search.methods.msnas_hw.shipping import choose_row

    def lat(res: Mapping[str, Any], which: str) -> dict[str, float] | None:
        v = (res.get("latency") or {}).get(which)
        return None if not v else {"p50_ms": v["p50_ms"], "p95_ms": v.get("p95_ms"), "fps": v["fps"], "shape": v.get("shape")}

    rows = {}
    for row in cfg.rows:
        res = results.get(row.key)
        if not res:
            continue
        rows[row.key] = {
            "name": row.name, "kind": row.kind,
            "dice": {**res["dice"].get("per_class", {}), "mean": res["dice"].get("mean")},
            "dice_std_over_patients": res["dice"].get("std", {}),
            "latency_trained": lat(res, "trained"), "latency_paper_size": lat(res, "paper_size"),
            "latency_per_frame": res.get("latency_per_frame"),
            "params_trained": res.get("params"), "flops_paper_size": res.get("flops_paper_size"),
            "lut_prediction_ms": (lut_predictions or {}).get(row.key),
            "paths": None if not res.get("genotype") else res["genotype"].get("paths"),
        }
    sizes = ("paper_size", "trained") if cfg.measure.measure_paper_size else ("trained",)
    targets = [asdict(c) for which in sizes for c in report.check_targets(cfg, results, which=which)]
    choice = choose_row(cfg, results)
    return {
        "method": "msnas-hw", "preset": cfg.preset, "seed": cfg.seed, "machine": report.MACHINE,
        "schedule": {"search": asdict(cfg.search), "retrain": asdict(cfg.retrain), "width_divisor": cfg.width_divisor,
                     "trained_clip": [cfg.data.clip_length, cfg.data.height, cfg.data.width],
                     "paper_clip": list(cfg.measure.paper_shape), "threads": cfg.threads},
        "measurement_load": {k: v for k, v in latency_doc.items() if k.endswith("_load")},
        "rows": rows,
        "paper_table2": {k: asdict(v) for k, v in report.PAPER_TABLE2.items()},
        "targets": targets,
        "searches": {k: {"latency_aware": d["search"]["latency_aware"], "n_paths": d["search"]["n_paths"],
                         "steps": len(d.get("history", [])), "seconds": d.get("seconds"),
                         "expected_latency_ms": d.get("expected_latency_ms"),
                         "arch_movement": arch_movement(d["arch"]) if "arch" in d else None,
                         "top_paths": (d.get("arch") or {}).get("top_paths")}
                     for k, d in searches.items()},
        "ship_choice": None if choice is None else {"row": choice[0].key, "reason": choice[1]},
        "variants": variants,
    }
