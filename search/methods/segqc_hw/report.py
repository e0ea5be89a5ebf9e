"""The segqc-hw report: Table II beside the paper's figures, the issue's targets, and the figures.

Everything here is computed from one run's results (``results.json``); nothing is typed in except
the paper's own Table II (Zeng et al. 2021, arXiv:2109.06909), quoted for comparison.

Counting convention: the paper's "FLOPs" column matches multiply-accumulate counts (our U-net(8) +
ResNet18 is 981 M MACs against its 1045 M; torch's counter gives 2 FLOPs per MAC), so the table
reports MACs in that column and the plain FLOP count beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from search.core.stats import bootstrap_mean_ci
from search.train.restart_report import CLASS_FLOOR, restart_table

ROWS = ("unet8", "unet16", "searched_nohw", "searched_hw")
ROW_NAMES = {
    "unet8": "U-net(8)+ResNet18",
    "unet16": "U-net(16)+ResNet18",
    "searched_nohw": "w/o hardware-aware (lambda2 = 0)",
    "searched_hw": "hardware-aware (lambda2 = 0.001)",
}
#: The segqc-hw paper's Table II (4-core Intel i7 of a Philips Epiq 7; FLOPs column = MACs, see module docstring).
PAPER_TABLE_II = {
    "unet8": {"dice": 0.797, "qc_mae": 0.050, "latency_ms": 47, "flops_m": 1045},
    "unet16": {"dice": 0.839, "qc_mae": 0.049, "latency_ms": 82, "flops_m": 3635},
    "searched_nohw": {"dice": 0.837, "qc_mae": 0.047, "latency_ms": 54, "flops_m": 440},
    "searched_hw": {"dice": 0.832, "qc_mae": 0.049, "latency_ms": 49, "flops_m": 373},
}
SENSITIVITY_PREFIX = "searched_hw_lambda"
#: Result keys of the random controls (``random_<search key>``, ``search.methods.segqc_hw.random_control``).
CONTROL_PREFIX = "random_"


def sensitivity_key(lambda2: float) -> str:
    """Result key of an extra hardware-aware search with latency weight ``lambda2``."""
    return f"{SENSITIVITY_PREFIX}{lambda2:g}"


def control_key(search_key: str) -> str:
    """Result key of the random control of the search ``search_key`` (e.g. ``random_searched_hw``)."""
    return f"{CONTROL_PREFIX}{search_key}"


def row_name(key: str) -> str:
    """Display name of a Table II row, of a sensitivity search or of a search's random control."""
    if key.startswith(CONTROL_PREFIX):
        return f"random genotype at the predicted latency of {row_name(key.removeprefix(CONTROL_PREFIX))}"
    if key.startswith(SENSITIVITY_PREFIX):
        return f"hardware-aware (lambda2 = {key.removeprefix(SENSITIVITY_PREFIX)}, sensitivity)"
    return ROW_NAMES[key]


TARGET_LATENCY_RATIO = 0.3
TARGET_DICE_GAP = 0.01
TARGET_QC_MAE = 0.05
TARGET_PEARSON = 0.8


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def targets(results: dict) -> list[dict]:
    """The issue's targets, each with the measured value, the threshold, met or not, and by how much."""
    rows = results["rows"]
    hw, nohw, ref = rows["searched_hw"], rows["searched_nohw"], rows["unet16"]
    ratio = hw["cost"]["latency_ms"] / ref["cost"]["latency_ms"]
    ratio_best = hw["cost"].get("latency_min_ms", math.nan) / ref["cost"].get("latency_min_ms", math.nan)
    gap = ref["test"]["dice_mean"] - hw["test"]["dice_mean"]
    lat_gain = nohw["cost"]["latency_ms"] - hw["cost"]["latency_ms"]
    dice_diff = nohw["test"]["dice_mean"] - hw["test"]["dice_mean"]
    out = [
        {"target": "framework latency <= 0.3x U-net(16)+ResNet18 (median)", "value": ratio, "threshold": TARGET_LATENCY_RATIO,
         "met": ratio <= TARGET_LATENCY_RATIO, "by": TARGET_LATENCY_RATIO - ratio},
        {"target": "framework latency <= 0.3x U-net(16)+ResNet18 (best of N)", "value": ratio_best,
         "threshold": TARGET_LATENCY_RATIO, "met": bool(ratio_best <= TARGET_LATENCY_RATIO),
         "by": TARGET_LATENCY_RATIO - ratio_best},
        {"target": "Dice within 0.01 of U-net(16)+ResNet18", "value": gap, "threshold": TARGET_DICE_GAP,
         "met": gap <= TARGET_DICE_GAP, "by": TARGET_DICE_GAP - gap},
        {"target": "QC MAE <= 0.05 (hardware-aware)", "value": hw["test"]["qc_mae"], "threshold": TARGET_QC_MAE,
         "met": hw["test"]["qc_mae"] <= TARGET_QC_MAE, "by": TARGET_QC_MAE - hw["test"]["qc_mae"]},
        {"target": "Pearson(predicted, true Dice) >= 0.8 on test (hardware-aware)", "value": hw["test"]["qc_pearson"],
         "threshold": TARGET_PEARSON, "met": bool(hw["test"]["qc_pearson"] >= TARGET_PEARSON),
         "by": hw["test"]["qc_pearson"] - TARGET_PEARSON},
        {"target": "latency term lowers measured latency (hw < w/o hw), ms saved", "value": lat_gain, "threshold": 0.0,
         "met": lat_gain > 0, "by": lat_gain, "dice_cost": dice_diff},
        {"target": "... at comparable Dice (hw at most 0.01 below w/o hw)", "value": dice_diff, "threshold": TARGET_DICE_GAP,
         "met": dice_diff <= TARGET_DICE_GAP, "by": TARGET_DICE_GAP - dice_diff},
    ]
    return out


def table_markdown(results: dict) -> str:
    """Table II, ours beside the paper's."""
    ref = results["rows"]["unet16"]["cost"]["latency_ms"]
    lines = [
        "| Method | Dice | QC MAE | Pearson r | Latency median (ms) | best of N (ms) | x U-net(16) | FLOPs (M, MACs) "
        "| FLOPs (M) | Params (k) | paper Dice | paper MAE | paper latency (ms) | paper x U-net(16) | paper FLOPs (M) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ROWS:
        r = results["rows"][key]
        p = PAPER_TABLE_II[key]
        c = r["cost"]
        lines.append(
            f"| {ROW_NAMES[key]} | {_f(r['test']['dice_mean'])} | {_f(r['test']['qc_mae'])} | {_f(r['test']['qc_pearson'], 2)} "
            f"| {_f(c['latency_ms'], 1)} | {_f(c.get('latency_min_ms'), 1)} | {_f(c['latency_ms'] / ref, 2)} "
            f"| {c['macs'] / 1e6:.0f} | {c['flops'] / 1e6:.0f} "
            f"| {c['params'] / 1e3:.0f} | {p['dice']:.3f} | {p['qc_mae']:.3f} | {p['latency_ms']} "
            f"| {p['latency_ms'] / PAPER_TABLE_II['unet16']['latency_ms']:.2f} | {p['flops_m']} |"
        )
    return "\n".join(lines)


def bins_markdown(results: dict) -> str:
    """Per quality bin (test patients): Dice, QC MAE and Pearson of every row."""
    lines = ["| Method | bin | frames | Dice | QC MAE | Pearson r |", "|---|---|---|---|---|---|"]
    for key in ROWS:
        for b, s in results["rows"][key]["test"].get("per_bin", {}).items():
            lines.append(f"| {ROW_NAMES[key]} | {b} | {s['n']} | {_f(s['dice_mean'])} | {_f(s['qc_mae'])} "
                         f"| {_f(s['qc_pearson'], 2)} |")
    return "\n".join(lines)


def _warmup_text(search: dict) -> str:
    """The warm-up in words: fixed epochs, or epochs until the supernet's Dice reaches the rule's."""
    if search.get("warmup_min_dice"):
        return (f"{search['warmup_epochs']}-{search['warmup_max_epochs']} warm-up epochs (until the supernet's "
                f"Dice on S1 reaches {search['warmup_min_dice']:g})")
    return f"{search['warmup_epochs']} warm-up"


def space_text(cfg: dict) -> str:
    """The search space in words (the recorded config's ``space`` and ``search``), its departures from the paper's
    named."""
    space, search = cfg["space"], cfg["search"]
    if space.get("seg_space", "cells") == "skeleton":
        widths = " / ".join(",".join(str(w) for w in ws) for ws in space["skeleton_widths"])
        where = "half resolution behind a stride-2 entry conv" if space["input_stride"] == 2 else "full resolution"
        return (f"Segmentation space: a U-net skeleton of {len(space['skeleton_widths'])} levels at {where} (not the "
                f"paper's cells; issue 16), each level's width one of {widths} (full resolution first) and its block "
                f"one of {', '.join(space['skeleton_blocks'])} (c dense, s depthwise-separable 3x3 conv, then convs per "
                f"block); QC space: the paper's cells, {space['nodes']} nodes per cell.")
    words = [f"{space['seg_init_filters']} initial filters", f"depth {space['seg_depth']}", f"{space['nodes']} nodes per cell"]
    if space.get("droppable_inputs"):
        words.append("the prev-prev input of a cell may be dropped" if space.get("keep_prev")
                     else "every cell input may be dropped")
    if space.get("stem_convs", 1) != 1:
        words.append(f"{space['stem_convs']} stem convs")
    if search.get("input_cost", "always") != "always":
        words.append("a droppable input's alignment priced by the probability it is read")
    return "Segmentation space: " + ", ".join(words) + "."


def search_markdown(results: dict) -> str:
    """Expected latency (LUT, softmax over alphas) and losses at the end of each search epoch."""
    lines = ["| search | epoch | phase | CE (S1) | supernet Dice (S1) | QC MSE (S2) | E[latency] (ms, LUT) | H(alpha) |",
             "|---|---|---|---|---|---|---|---|"]
    for key in ("searched_nohw", "searched_hw"):
        for h in results["rows"][key]["search"]["history"]:
            dice = _f(h["dice_s1"]) if "dice_s1" in h else "-"  # records from before the warm-up's Dice rule
            lines.append(f"| {ROW_NAMES[key]} | {h['epoch']} | {h['phase']} | {_f(h['ce'])} | {dice} "
                         f"| {_f(h['mse_s2'], 4)} | {_f(h['expected_latency_ms'], 2)} | {_f(h['arch_entropy'], 3)} |")
    return "\n".join(lines)


def lut_markdown(results: dict) -> str:
    """The lookup table's plain-sum prediction for each derived pair beside its measured latency."""
    lines = ["| searched pair | LUT prediction (ms) | measured best of N (ms) | measured median (ms) |", "|---|---|---|---|"]
    for key in ("searched_nohw", "searched_hw"):
        r = results["rows"][key]
        lines.append(f"| {ROW_NAMES[key]} | {_f(r.get('expected_latency_ms'), 2)} | {_f(r['cost'].get('latency_min_ms'), 2)} "
                     f"| {_f(r['cost']['latency_ms'], 2)} |")
    return "\n".join(lines)


def sensitivity_markdown(results: dict) -> str:
    """Searches with a larger latency weight beside the two Table II searches (same harness and process)."""
    rows = results["rows"]
    ref, nohw = rows["unet16"], rows["searched_nohw"]
    lines = ["| search | lambda2 | Dice | QC MAE | Pearson r | latency median (ms) | best of N (ms) | x U-net(16) "
             "| ms saved vs w/o hw (median / best) | Dice vs w/o hw | MACs (M) | LUT prediction (ms) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    entries = [("searched_nohw", nohw), ("searched_hw", rows["searched_hw"])]
    entries += list((results.get("sensitivity") or {}).items())
    for key, r in entries:
        c = r["cost"]
        saved = nohw["cost"]["latency_ms"] - c["latency_ms"]
        saved_best = nohw["cost"].get("latency_min_ms", math.nan) - c.get("latency_min_ms", math.nan)
        lam = r.get("lambda2", r.get("search", {}).get("lambda2"))
        lines.append(f"| {row_name(key)} | {_f(lam, 4)} | {_f(r['test']['dice_mean'])} | {_f(r['test']['qc_mae'])} "
                     f"| {_f(r['test']['qc_pearson'], 2)} | {_f(c['latency_ms'], 1)} | {_f(c.get('latency_min_ms'), 1)} "
                     f"| {_f(c['latency_ms'] / ref['cost']['latency_ms'], 2)} | {_f(saved, 1)} / {_f(saved_best, 1)} "
                     f"| {_f(r['test']['dice_mean'] - nohw['test']['dice_mean'])} | {c['macs'] / 1e6:.0f} "
                     f"| {_f(r.get('expected_latency_ms'), 2)} |")
    return "\n".join(lines)


def patient_difference(searched_test: dict, control_test: dict, *, n_boot: int = 2000, seed: int = 0) -> dict | None:
    """Searched minus control test Dice, paired by patient: the mean over patients of the difference of their
    per-patient mean (frame) Dice, with a 95% percentile bootstrap interval resampling patients (seeded).
    None when the frames are missing or fewer than 2 patients are scored by both (then there is no interval)."""
    def per_patient(test: dict) -> dict:
        by: dict = {}
        for f in test.get("frames") or []:
            if f.get("true") is not None and math.isfinite(f["true"]):
                by.setdefault(f["patient"], []).append(float(f["true"]))
        return {k: sum(v) / len(v) for k, v in by.items()}

    a, b = per_patient(searched_test), per_patient(control_test)
    patients = sorted(set(a) & set(b), key=str)
    if len(patients) < 2:
        return None
    d = np.array([a[k] - b[k] for k in patients])
    lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, rng=np.random.default_rng(seed))
    return {"patients": len(patients), "mean": float(d.mean()), "ci95": [float(lo), float(hi)], "n_boot": n_boot}


def random_control_verdict(key: str, searched: dict, control: dict) -> dict:
    """The second verdict on a search (the first: ``search.core.convergence``): does its retrained pair beat
    a random genotype of the same predicted latency, retrained in the same harness, on test Dice? ``key``: the
    control's result key, ``searched`` and ``control``: the two result rows (scores, cost, LUT prediction).

    ``margin`` is searched minus random test Dice (frame means); ``difference`` the same paired by patient with
    its 95% bootstrap interval (``patient_difference``); ``beats`` is ``margin > 0`` and, when there is an
    interval, its lower end above 0 (one seed of each on 20-odd patients: a margin inside the patients' noise
    decides nothing); ``clear``: the interval excludes 0 (or there is none). False when either Dice is NaN.
    ``predicted_ms`` and ``measured_ms`` (Table II median) are the control's; the searched pair's sit in its row.
    """
    margin = float(searched["test"]["dice_mean"] - control["test"]["dice_mean"])
    difference = patient_difference(searched["test"], control["test"])
    ci = difference["ci95"] if difference else None
    beats = bool(margin > 0 and (ci is None or ci[0] > 0))
    return {"control": key, "beats": beats, "margin": margin, "difference": difference,
            "clear": bool(ci is None or ci[0] > 0 or ci[1] < 0),
            "dice": control["test"]["dice_mean"], "searched_dice": searched["test"]["dice_mean"],
            "target_ms": control.get("target_ms"), "predicted_ms": control.get("expected_latency_ms"),
            "measured_ms": control["cost"]["latency_ms"], "measured_min_ms": control["cost"].get("latency_min_ms"),
            "sampling_seed": control.get("sampling_seed"), "n_candidates": control.get("n_candidates"),
            "matched": control.get("matched"), "closest_draw_ms": control.get("closest_draw_ms"),
            "refine_steps": control.get("refine_steps")}


def verdict_text(verdict: dict) -> str:
    margin = verdict["margin"]
    if not math.isfinite(margin):
        return "n/a (a Dice is NaN)"
    diff = verdict.get("difference")
    ci = f"; 95% CI over {diff['patients']} patients [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}]" if diff else ""
    if verdict["beats"]:
        text = f"beats its random control (by {margin:.3f} Dice{ci})"
    elif diff and not verdict.get("clear", True):
        text = f"shows no clear difference from its random control ({margin:+.3f} Dice{ci} spans 0)"
    elif margin == 0:
        text = "does NOT beat its random control (the same Dice)"
    else:
        text = f"does NOT beat its random control ({-margin:.3f} Dice below it{ci})"
    if verdict.get("matched") is False:  # an older record has no such field: say nothing
        text += (f"; the control is NOT cost-matched (predicted {_f(verdict['predicted_ms'], 1)} ms against the "
                 f"search's {_f(verdict['target_ms'], 1)} ms)")
    return text


def random_control_markdown(results: dict) -> str:
    """Every search beside its random control: test Dice, predicted (LUT) and measured (median) ms, the verdict."""
    lines = ["| search | Dice (test) | random control's Dice | predicted ms (search / random) "
             "| measured median ms (search / random) | verdict |", "|---|---|---|---|---|---|"]
    searched = {**results["rows"], **(results.get("sensitivity") or {})}
    for key, control in (results.get("controls") or {}).items():
        of = control.get("random_control_of", key.removeprefix(CONTROL_PREFIX))
        r = searched.get(of)
        if r is None:
            continue
        v = r.get("random_control") or random_control_verdict(key, r, control)
        lines.append(f"| {row_name(of)} | {_f(r['test']['dice_mean'])} | {_f(v['dice'])} "
                     f"| {_f(r.get('expected_latency_ms'), 2)} / {_f(v['predicted_ms'], 2)} "
                     f"| {_f(r['cost']['latency_ms'], 1)} / {_f(v['measured_ms'], 1)} | {verdict_text(v)} |")
    return "\n".join(lines)


def export_markdown(record: dict | None) -> str:
    """What was shipped into ``models/`` (ids, hashes, measured card metrics, the INT8 decision)."""
    if not record:
        return "Nothing exported by this run (`--no-export`)."
    lines = ["| model | sha256 (first 12) | card metrics (exported ONNX, test patients) | latency p50 (ms, shipped resolution) |",
             "|---|---|---|---|"]
    for part in ("seg", "qc"):
        m = record[part]["metrics"]
        if part == "seg":
            what = f"Dice {_f((m.get('dice') or {}).get('mean'))}"
        else:
            what = f"QC MAE {_f(m.get('qc_mae'))}, Pearson r {_f(m.get('qc_pearson'), 2)}"
        lat = (m.get("latency_ms") or {}).get("p50")
        lines.append(f"| `{record[part]['id']}` | `{record[part]['sha256'][:12]}` | {what} | {_f(lat, 2)} |")
    q = record["int8"]
    origin = record.get("from_search", "searched_hw")
    lines = [f"From the search `{row_name(origin)}`: the hardware-aware pair with the best validation score "
             "(Dice minus QC MAE on the S2 validation patients; the test patients play no part).", ""] + lines
    lines += ["", f"INT8 variant of the segmentation model: {q['reason']} (rule: ship only if faster on this CPU "
              "at <= 0.005 Dice loss, both measured interleaved in one process)."]
    return "\n".join(lines)


def _split(results: dict) -> str:
    """The patient split as run (quality-stratified, so a part may differ by one from the config)."""
    n = results.get("n_patients")
    if not n:
        d = results["config"]["data"]
        return f"{d['n_s1']} S1 / {d['n_s2']} S2 / {d['n_test']} test patients"
    return (f"{n['s1']} S1 (seg) / {n['s2_train'] + n['s2_val']} S2 ({n['s2_train']} QC training + {n['s2_val']} "
            f"validation) / {n['test']} test patients")


def write_report(results: dict, folder: Path, figures: dict[str, str]) -> Path:
    """``README.md`` (the report) and ``results.json`` into ``folder``; returns the report path."""
    folder.mkdir(parents=True, exist_ok=True)
    tg = targets(results)
    results = dict(results, targets=tg)
    (folder / "results.json").write_text(json.dumps(_strip_frames(results), indent=1, allow_nan=True) + "\n")
    cfg = results["config"]
    bmode = cfg["data"].get("task", "contrast") == "bmode"
    kind = "B-mode apical four-chamber echo (LV, MYO, LA)" if bmode else "contrast echo"
    lines = [
        f"# segqc-hw: joint segmentation + QC search for {kind} (Zeng et al. 2021, arXiv:2109.06909; Table II)",
        "",
        f"Preset `{cfg['preset']}`, master seed {cfg['seed']}: phantom {kind}, "
        f"{_split(results)}, "
        f"{cfg['data']['frames_per_case']} frames each, trained at {cfg['data']['resolution']}x{cfg['data']['resolution']}; "
        f"search {_warmup_text(cfg['search'])} + {cfg['search']['alternate_epochs']} alternating epochs"
        f"{_sampler_text(cfg['search'])}, "
        f"seeds {cfg['search']['seeds']}; retraining {cfg['retrain']['seg_epochs']} seg + {cfg['retrain']['qc_epochs']} QC epochs. "
        + space_text(cfg),
        "",
        f"Dice, QC MAE and Pearson: {results['n_test_frames']} frames of the held-out test patients. Latency: "
        f"seg + QC end to end at {cfg['measure']['resolution']}x{cfg['measure']['resolution']}, median and best of "
        f"{cfg['measure']['timed_runs']} interleaved rounds (all rows in one process), on {results['machine']}; "
        "the machine's cores are shared with other jobs, so the best of N is the closer figure for a dedicated "
        "scanner PC. "
        "The paper's figures are from a 4-core Intel i7 (Philips Epiq 7) on its own MCE data."
        + (" This run is the B-mode task (`--task bmode`): 4 classes (0 background, 1 LV, 2 MYO, 3 LA), Dice and the "
           "QC target are the mean over the three foreground classes, and the networks' class heads and QC inputs "
           "carry 4 channels; the paper's Dice and MAE are for the myocardium on contrast echo, so compare those "
           "columns with care." if bmode else ""),
        "",
        "## Table II",
        "",
        table_markdown(results),
        "",
        "## Targets (issue 8)",
        "",
        "| target | measured | threshold | met | margin |",
        "|---|---|---|---|---|",
    ]
    for t in tg:
        lines.append(f"| {t['target']} | {_f(t['value'])} | {t['threshold']} | {'yes' if t['met'] else 'NO'} | {_f(t['by'])} |")
    lines += ["", "## Seg trainings that collapsed", "", restarts_markdown(results), "",
              "## Per acquisition-quality bin (test patients)", "", bins_markdown(results), "",
              "## Search traces", "", search_markdown(results), "",
              "The latency table sums op entries measured alone (best of N, minus the session overhead); a whole "
              "network also pays the glue the table has no key for (concatenations, additions, interpolation, "
              "memory traffic between ops), so the sum is a lower bound that ranks architectures:", "",
              lut_markdown(results), ""]
    if results.get("sensitivity"):
        lines += ["## Latency weight sensitivity (not in the paper)", "",
                  "The same search with a larger latency weight, derived, retrained and measured in the same "
                  "harness and process as Table II:", "", sensitivity_markdown(results), ""]
    if seed_spread := seeds_markdown(results):
        lines += ["## Search seeds", "",
                  "Every seed of a search derived, retrained and scored in the same harness; Table II shows the seed "
                  "best on validation (Dice minus QC MAE on the S2 validation patients, never the test patients). "
                  "Spread: the largest minus the smallest test Dice over the seeds.", "", seed_spread, ""]
    if results.get("controls"):
        lines += ["## Searched vs a random genotype of the same predicted latency", "",
                  "A search whose architecture weights converged may still have learnt nothing about the task (with "
                  "the latency term the weights can drift to the cheap ops alone). The control: a random genotype of "
                  "the same space whose lookup-table prediction is closest to the searched pair's (the closest of "
                  f"{_control_draws(results)} drawn with one seed, then cells swapped for random ones while that "
                  "brings its prediction nearer: a cost-only search that never reads the task; matched: within 5%), "
                  "retrained from scratch in the same harness (same "
                  "patients, schedule and seed) and timed in the same Table II process. A search that does not beat "
                  "its control found a latency, not an architecture. The interval is over test patients for one training "
                  "of each network: it leaves out how much the same architecture varies between training seeds "
                  "(`bench/size_table.py --train-seeds` measures that), so a verdict by a margin smaller than that "
                  "spread is not one.", "", random_control_markdown(results), ""]
        for key, control in results["controls"].items():
            lines += [f"{row_name(key)} (sampling seed {control.get('sampling_seed')}):", "", "```json",
                      json.dumps(control["genotype"]), "```", ""]
    lines += ["## Figures", ""]
    for caption, name in figures.items():
        lines.append(f"![{caption}]({name})")
        lines.append("")
    lines += ["## Shipped pair", "", export_markdown(results.get("export")), "", "## Searched genotypes", ""]
    searched = {k: results["rows"][k] for k in ("searched_nohw", "searched_hw")}
    searched.update(results.get("sensitivity") or {})
    for key, r in searched.items():
        lines += [f"{row_name(key)}:", "", "```json", json.dumps(r["genotype"]), "```", ""]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path


def restarts_markdown(results: dict) -> str:
    """Which rows' seg nets collapsed to background in retraining and were started again (``search.train.restarts``)."""
    cfg = results["config"]["retrain"]
    every = {**results["rows"], **(results.get("sensitivity") or {}), **(results.get("controls") or {})}
    rows = [([row_name(key)], row.get("seg_training") or {}) for key, row in every.items()]
    return "\n".join(restart_table(rows, ["row"], cfg.get("restart_floor", CLASS_FLOOR), cfg.get("seg_restarts", 0)))


def seeds_markdown(results: dict) -> str:
    """Per search with more than one seed: each seed's convergence, prediction and scores, and the Dice spread
    ("" when every search ran one seed)."""
    searched = {k: r for k, r in {**results["rows"], **(results.get("sensitivity") or {})}.items()
                if len(r.get("seeds") or []) > 1}
    if not searched:
        return ""
    lines = ["| search | seed | converged | entropy drop | LUT ms | val score | test Dice | test QC MAE | shown |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, r in searched.items():
        for s in r["seeds"]:
            drop = s.get("entropy_drop")
            lines.append(f"| {row_name(key)} | {s['seed']} | {_yes_no(s.get('converged'))} | "
                         f"{'n/a' if drop is None else f'{100 * drop:.0f}%'} | {s['expected_latency_ms']:.1f} | "
                         f"{s['val_score']:.3f} | {s['dice_test']:.3f} | {s['qc_mae_test']:.3f} | "
                         f"{'yes' if s['seed'] == r.get('search_seed') else ''} |")
        dice = [s["dice_test"] for s in r["seeds"]]
        lines.append(f"| {row_name(key)} | spread | | | | | {max(dice) - min(dice):.3f} | | |")
    return "\n".join(lines)


def _yes_no(flag) -> str:
    return "n/a" if flag is None else ("yes" if flag else "NO")


def _sampler_text(search: dict) -> str:
    """How the search's forward passes weighed the candidates; nothing for DARTS (the paper's mixture, whose
    configs do not name a sampler)."""
    if search.get("sampler", "darts") != "gdas":
        return ""
    start, end = search["gdas_tau"]
    return (f" (GDAS: one candidate per edge, a hard straight-through Gumbel-softmax sample, tau {start:g} -> {end:g}; "
            "the latency term is the Gumbel-softmax expectation; genotype = argmax of the alphas)")


def _control_draws(results: dict) -> str:
    """How many candidates the controls were chosen from (one pool per run: one number)."""
    return " / ".join(sorted({str(c.get("n_candidates")) for c in results["controls"].values()}))


def _strip_frames(results: dict) -> dict:
    """results without the per-frame lists (they go to ``frames.json``), for a readable JSON."""
    out = json.loads(json.dumps(results, allow_nan=True))
    parts = ("rows", "sensitivity", "controls")
    for r in [r for part in parts for r in (out.get(part) or {}).values()]:
        for split in ("val", "test"):
            if split in r:
                r[split].pop("frames", None)
    return out
