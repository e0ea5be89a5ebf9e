"""The Markdown report of one ``msnas-hw`` run (every number in it is read from the run's files)."""

from __future__ import annotations

import math
from typing import Any, Mapping

from search.core.genotypes import MultiscaleGenotype
from search.methods.msnas_hw import report
from search.methods.msnas_hw.config import MsnasHwConfig
from search.methods.msnas_hw.drawing import describe_genotype


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
        "# msnas-hw: hardware-aware multi-scale NAS for 3D cine MR (seed 001), Table 2 on our data and CPU",
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
        "- Latency target is this CPU with onnxruntime (the paper: a GTX 1080 with PyTorch). lambda = 1e-4 with LAT in ms "
        "as in the paper; our ms are larger, so the term weighs relatively more.",
        "- The path-wise latency sums the top-n paths as the paper does (eq. 9); on a 2-core CPU the paths do not run in "
        "parallel, so a sum over paths is also the right model of the fused network's cost.",
    ]
    if cfg.preset != "paper":
        lines.append("- Schedules are counted in optimiser steps and much shorter than the paper's 30 + 30 search "
                     "epochs (see `search/methods/msnas_hw/config.py`).")
    return "\n".join(lines) + "\n"
