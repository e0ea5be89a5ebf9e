"""rtdnas report: constraint rounds, Table 1 (top-weight vs GA), Table 2 (vs baselines), Fig. 2, targets.

Every number comes from the run folder; the values of the RT-DNAS paper (Lu et al., MICCAI 2022,
arXiv:2206.04682) are printed beside ours for reference only (their GPU and ACDC vs our 2-core CPU
and phantom data: compare trends, not values).
"""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

from app.realtime import REALTIME
from search.methods.rtdnas.config import RtdnasConfig
from search.train.restart_report import rows_restarts_markdown

MACHINE = f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores (shared), onnxruntime CPU EP"
CLASSES = ("RV", "MYO", "LV")

#: The RT-DNAS paper, Table 1: (method, N_l) -> (RV, MYO, LV, average, LT ms, TP FPS) on a P100.
PAPER_TABLE1 = {
    ("top-weight", 3): (.865, .843, .877, .849, 27, 39.8), ("top-weight", 5): (.911, .881, .925, .905, 40, 32.0),
    ("top-weight", 7): (.928, .882, .943, .918, 48, 22.1), ("GA", 3): (.857, .843, .878, .859, 26, 40.4),
    ("GA", 5): (.910, .889, .932, .910, 35, 34.1), ("GA", 7): (.925, .891, .950, .922, 41, 28.9),
}
#: The RT-DNAS paper, Table 2 rows (RV, MYO, LV, average, LT, TP).
PAPER_TABLE2 = {
    "ICA-UNet (n = 3)": (.900, .869, .934, .901, 35, 31.6), "ICA-UNet (n = 4)": (.921, .888, .952, .920, 39, 28.3),
    "HW-Aware NAS": (.922, .910, .958, .930, 52, 19.5), "BiX-NAS": (.916, .908, .946, .923, 49, 20.1),
    "MS-NAS": (.928, .911, .961, .933, 55, 18.8), "DeU-NAS": (.961, .927, .971, .953, 121, 10.2),
    "RT-DNAS (N_l = 6)": (.924, .890, .939, .918, 37, 31.8), "RT-DNAS (N_l = 7)": (.925, .891, .950, .922, 41, 28.9),
    "RT-DNAS (N_l = 8)": (.933, .902, .959, .931, 46, 23.4),
}


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _dice(r: Mapping[str, Any]) -> list[str]:
    d = r.get("dice") or {}
    per = d.get("per_class", {})
    std = d.get("std", {})
    cells = [f"{_f(per.get(c))} ± {_f(std.get(c))}" if c in per else "-" for c in CLASSES]
    return cells + [f"{_f(d.get('mean'))} ± {_f(std.get('mean'))}"]


def _lat(r: Mapping[str, Any]) -> tuple[float, float]:
    lat = r.get("latency") or {}
    return lat.get("p50_ms", float("nan")), lat.get("fps", float("nan"))


def search_options(search) -> str:
    """The issue-16 search options a run turned on, as a clause for the report (empty for the paper's search)."""
    parts = []
    if search.sampler == "gdas":
        parts.append(f"GDAS single-path sampling, tau {search.gdas_tau[0]:g} -> {search.gdas_tau[1]:g}")
    if search.free_op_dropout:
        parts.append(f"dropout {search.free_op_dropout:g} on the weight-free candidates")
    if search.skip_edge_dropout:
        parts.append(f"dropout {search.skip_edge_dropout:g} on the grid's skip edges")
    return "" if not parts else " (" + "; ".join(parts) + ")"


def pick_paragraph(derivation: Mapping[str, Any]) -> str:
    """Which candidate's cells the derivation used (``RtdnasConfig.pick``); empty when the argmax went on alone."""
    p = derivation.get("pick")
    if not p:
        return ""
    scores = " / ".join("over L_ub" if d is None else f"{d:.3f}" for d in p["val_dice"])
    why = f" ({p['why']})" if p.get("why") else ""
    drawn = {"sampled": "cells and gene pool drawn from its architecture distribution",
             "both": "cells drawn from its architecture distribution, each on the heaviest paths and on a drawn gene "
                     "pool"}.get(p.get("paths"), "cells drawn from its architecture distribution")
    return (f"\n{pick_words(p)}: candidate {p['picked']} ({p['source']}) of {len(p['val_dice'])} (candidate 0: the "
            f"search's argmax on its heaviest paths, the others' {drawn}), "
            f"picked by {p['rule']}{why}. Validation Dice per candidate: {scores}.\n")


def pool_words(cfg: RtdnasConfig, derivation: Mapping[str, Any]) -> str:
    """Where the derivation's gene pool came from: the round's heaviest paths, or the picked candidate's draw."""
    if drawn_pool(derivation):
        return f"{len(derivation['pool'])} paths drawn from the round's path distribution, the picked candidate's"
    return f"top-{cfg.ga.pool_size} paths by accumulated weight"


def drawn_pool(derivation: Mapping[str, Any]) -> bool:
    """Whether the derivation's gene pool is the picked candidate's draw (``PickConfig.paths = "sampled"``)."""
    return (derivation.get("pick") or {}).get("gene_pool") == "sampled"


def table1_pool_words(derivation: Mapping[str, Any]) -> str:
    """Table 1's caveat when its gene pool was drawn: top-weight is then the heaviest paths *of that pool*."""
    return (" (gene pool drawn by the pick: top-weight = its heaviest paths, not the search's; the paper's figures "
            "compare the search's)" if drawn_pool(derivation) else "")


def pick_words(pick: Mapping[str, Any]) -> str:
    """What the pick chose: "Cells", or "Cells and paths" when its candidates drew their gene pools too."""
    return "Cells and paths" if pick.get("gene_pool") == "sampled" else "Cells"


def meets(cfg: RtdnasConfig, r: Mapping[str, Any]) -> bool:
    """The one real-time rule (``app.realtime.REALTIME``) on the row's p95 latency and FPS."""
    lat = r.get("latency") or {}
    return REALTIME.meets(lat.get("p95_ms"), lat.get("fps"))


def rounds_markdown(rounds: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| round | L_ub (ms) | L_t after search (ms) | checked N_l | LUT (ms) | measured p50 (ms) | FPS | met | search s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rounds:
        m = r["measured"]
        lines.append(f"| {r['round']} | {r['ub_ms']:.1f} | {r['final_l_t_ms']:.1f} | {r['n_paths']} | {r['lut_ms']:.1f} | "
                     f"{m['p50_ms']:.1f} | {m['fps']:.1f} | {'yes' if r['meets'] else 'NO'} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def table1_markdown(cfg: RtdnasConfig, rows: Mapping[str, Any]) -> str:
    head = ("| method | N_l | RV | MYO | LV | average | LUT (ms) | LT p50 (ms) | TP (FPS) | meets | paper avg / LT / TP |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for n in cfg.table1_paths:
        for method, key in (("top-weight", f"tw_n{n}"), ("GA", f"ga_n{n}")):
            r = rows.get(key)
            if r is None:
                continue
            p50, fps = _lat(r)
            same = " (= top-weight)" if r.get("same_network_as") else ""
            paper = PAPER_TABLE1.get((method, n))
            ptxt = f"{paper[3]:.3f} / {paper[4]} / {paper[5]}" if paper else "-"
            lines.append(f"| {method}{same} | {n} | " + " | ".join(_dice(r)) + f" | {_f(r.get('lut_ms'), 1)} | "
                         f"{_f(p50, 1)} | {_f(fps, 1)} | {'yes' if meets(cfg, r) else 'no'} | {ptxt} |")
    return "\n".join(lines)


def full_cloud(cloud: Mapping[str, Any] | None) -> dict[str, Any]:
    """The cloud networks retrained with the full schedule (keys ``cloud_<i>_full``)."""
    return {k: r for k, r in (cloud or {}).items() if k.endswith("_full")}


def table2_markdown(cfg: RtdnasConfig, rows: Mapping[str, Any], baselines: Mapping[str, Any],
                    cloud: Mapping[str, Any] | None = None) -> str:
    """Our networks (sweep, Table 1, fully trained random ones) and msnas-hw's rows, best Dice first within
    'meets' then the rest."""
    entries = []
    for key, r in rows.items():
        if key.startswith("ga_") and not r.get("same_network_as") or key.startswith("tw_"):
            entries.append((f"RT-DNAS {'GA' if key.startswith('ga_') else 'top-weight'} (N_l = {key.split('_n')[1]})", r, "this run"))
    for key, r in full_cloud(cloud).items():
        entries.append((r.get("name", key), r, "this run (random architecture)"))
    for b in baselines.values():
        entries.append((b["name"], b, "msnas-hw run"))
    entries.sort(key=lambda e: (not meets(cfg, e[1]), -(e[1].get("dice") or {}).get("mean", -1.0)))
    lines = ["| network | RV | MYO | LV | average | LT p50 (ms) | TP (FPS) | meets " + REALTIME.describe() + " | measured in |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r, where in entries:
        p50, fps = _lat(r)
        lines.append(f"| {name} | " + " | ".join(_dice(r)) + f" | {_f(p50, 1)} | {_f(fps, 1)} | "
                     f"{'yes' if meets(cfg, r) else '**no**'} | {where} |")
    return "\n".join(lines)


def plot_fig2(cfg: RtdnasConfig, rows: Mapping[str, Any], cloud: Mapping[str, Any], baselines: Mapping[str, Any],
              path: Path) -> Path:
    """Dice vs latency (a) and vs throughput (b): cloud, top-weight, GA, msnas-hw rows, constraint lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2))
    groups = [
        (f"random (short training, {cfg.cloud.train_steps} steps)" if cfg.cloud.train_steps
         else "random, untrained: latency only (rug at Dice 0)",
         [r for k, r in cloud.items() if not k.endswith("_full")],
         dict(c="0.55", marker="." if cfg.cloud.train_steps else "|", s=30 if cfg.cloud.train_steps else 120)),
        ("random (full training)", list(full_cloud(cloud).values()), dict(c="tab:green", marker="D", s=30)),
        ("top-weight", [r for k, r in rows.items() if k.startswith("tw_")], dict(c="tab:orange", marker="s", s=40)),
        ("RT-DNAS GA", [r for k, r in rows.items() if k.startswith("ga_")], dict(c="tab:red", marker="*", s=90)),
        ("msnas-hw run (U-nets, MS-NAS, msnas-hw)", list(baselines.values()), dict(c="tab:blue", marker="^", s=40)),
    ]
    for ax, which in zip(axes, ("latency", "throughput")):
        for label, rs, style in groups:
            pts = [(_lat(r)[0 if which == "latency" else 1],
                    0.0 if r.get("untrained") else (r.get("dice") or {}).get("mean", float("nan"))) for r in rs]
            pts = [p for p in pts if not any(math.isnan(v) for v in p)]
            if pts:
                ax.scatter(*zip(*pts), label=label, **style)
        if which == "latency":
            ax.axvline(cfg.measure.realtime_latency_ms, color="k", ls="--", lw=1)
            ax.set_xlabel("latency p50 per clip (ms)")
            ax.set_xscale("log")
        else:
            ax.axvline(cfg.measure.realtime_fps, color="k", ls="--", lw=1)
            ax.set_xlabel("throughput (clips/s = 1000 / mean latency)")
            ax.set_xscale("log")
        ax.set_ylabel("mean Dice (RV, MYO, LV)")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"(a) Dice vs latency, line = {cfg.measure.realtime_latency_ms:g} ms")
    axes[1].set_title(f"(b) Dice vs throughput, line = {cfg.measure.realtime_fps:g} FPS")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"rtdnas {cfg.preset}: {MACHINE}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def check_targets(cfg: RtdnasConfig, rows: Mapping[str, Any], baselines: Mapping[str, Any],
                  cloud: Mapping[str, Any] | None = None) -> list[str]:
    """One line per issue-10 target, MET / NOT met with the numbers behind it."""
    out = []
    for n in cfg.table1_paths:
        tw, ga = rows.get(f"tw_n{n}"), rows.get(f"ga_n{n}")
        if not tw or not ga:
            continue
        if ga.get("same_network_as"):
            out.append(f"- N_l = {n}: GA returned the top-weight network itself (no faster individual in the pool).")
            continue
        lt_tw, lt_ga = _lat(tw)[0], _lat(ga)[0]
        d_tw, d_ga = tw["dice"]["mean"], ga["dice"]["mean"]
        ok = lt_ga < lt_tw and d_ga >= d_tw
        out.append(f"- N_l = {n}: GA {lt_ga:.1f} ms / Dice {d_ga:.3f} vs top-weight {lt_tw:.1f} ms / Dice {d_tw:.3f} "
                   f"(LUT {ga.get('lut_ms', float('nan')):.1f} vs {tw.get('lut_ms', float('nan')):.1f}): "
                   + ("MET" if ok else "NOT met" + (" (latency)" if lt_ga >= lt_tw else "") + (" (Dice)" if d_ga < d_tw else "")))
    ours = {f"ours:{k}": r for k, r in rows.items() if "dice" in r}
    allrows = {**ours, **{f"random:{k}": r for k, r in full_cloud(cloud).items()},
               **{f"msnas-hw:{k}": b for k, b in baselines.items()}}
    feasible = {k: r for k, r in allrows.items() if meets(cfg, r) and not math.isnan(r["dice"]["mean"])}
    no_cloud = " (no random network of equal training: this run left the cloud out)" if cloud == {} else ""
    if not feasible:
        out.append("- No network of this run or of msnas-hw's run meets both constraints on this CPU.")
    else:
        best = max(feasible, key=lambda k: feasible[k]["dice"]["mean"])
        out.append(f"- Best Dice among networks meeting both constraints: {best} "
                   f"({feasible[best]['dice']['mean']:.3f}, {_lat(feasible[best])[0]:.1f} ms, {_lat(feasible[best])[1]:.1f} FPS): "
                   + ("an rtdnas network (target MET)" if best.startswith("ours:") else "NOT an rtdnas network (target NOT met)")
                   + no_cloud)
    return out


def write_report(cfg: RtdnasConfig, out: Path, results: Mapping[str, Any], derivation: Mapping[str, Any],
                 rounds: Sequence[Mapping[str, Any]], baselines: Mapping[str, Any]) -> Path:
    """Write ``out/report/{report.md, table1.md, table2.md, fig2.png}``; return report.md's path."""
    folder = Path(out) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    rows, cloud = results["rows"], results["cloud"]
    t1, t2 = table1_markdown(cfg, rows), table2_markdown(cfg, rows, baselines, cloud)
    (folder / "table1.md").write_text(t1 + "\n")
    (folder / "table2.md").write_text(t2 + "\n")
    plot_fig2(cfg, rows, cloud, baselines, folder / "fig2.png")
    pool = "\n".join(f"{i}. `{' '.join(p['kinds'])}` (log weight {p['log_weight']:.3f})" for i, p in enumerate(derivation["pool"]))
    ga_lines = "\n".join(f"- N_l = {n}: top-weight genes {d['top_weight']} -> LUT {d['top_weight_latency_ms']:.2f} ms; GA genes "
                         f"{d['best']} -> LUT {d['latency_ms']:.2f} ms ({d['evaluated']} individuals evaluated)"
                         + ("" if d.get("exhaustive_ms") is None else
                            f"; exhaustive optimum over all C({len(derivation['pool'])}, {n}) individuals: "
                            f"{d['exhaustive_ms']:.2f} ms {d['exhaustive_best']}")
                         for n, d in derivation["by_n"].items())
    cloud_dice = [r["dice"]["mean"] for k, r in cloud.items() if not k.endswith("_full") and not math.isnan(r["dice"]["mean"])]
    n_short, n_full = len(cloud) - len(full_cloud(cloud)), len(full_cloud(cloud))
    if cfg.cloud.train_steps:
        cloud_text = (f"each trained only **{cfg.cloud.train_steps} steps** (the searched networks get {cfg.retrain.steps}): "
                      f"their Dice (mean {(sum(cloud_dice) / len(cloud_dice)) if cloud_dice else float('nan'):.3f}) is a "
                      "short-training proxy, their latency is measured exactly like every other row.")
    else:
        lat = sorted(_lat(r)[0] for k, r in cloud.items() if not k.endswith("_full") and r.get("latency"))
        n_ok = sum(1 for k, r in cloud.items() if not k.endswith("_full") and meets(cfg, r))
        cloud_text = ("**untrained** (no Dice: drawn as a rug at Dice 0), timed exactly like every other row: "
                      + (f"median {lat[len(lat) // 2]:.1f} ms, range {lat[0]:.1f}-{lat[-1]:.1f} ms; {n_ok} of {n_short} "
                         f"meet {cfg.measure.realtime_latency_ms:g} ms / {cfg.measure.realtime_fps:g} FPS." if lat else "not timed yet."))
    if cloud:
        cloud_paragraph = (f"Cloud: {n_short} random architectures of the space (`sample_random_genotype(\"rtdnas\")`, "
                           f"N_l from 1 to\n{cfg.cloud.max_paths}), {cloud_text} The {n_full} slowest of\n"
                           "them that meet the budget when measured (the most capacity within it) were retrained with "
                           f"the full\n{cfg.retrain.steps}-step schedule (green diamonds, and in Table 2) so that the "
                           "searched networks also face\nrandom ones of equal training.")
    else:
        cloud_paragraph = ("Cloud: **left out of this run** (`--no-cloud`: `python -m search` leaves this report "
                           "diagnostic out unless\n`--diagnostics`; `python -m search rtdnas` trains it). The figure "
                           "has the searched networks only, and the\ntargets below compare them with msnas-hw's "
                           "networks alone, not with random ones of equal training.")
    text = f"""# rtdnas (RT-DNAS, Lu et al., MICCAI 2022, arXiv:2206.04682) -- preset `{cfg.preset}`, seed {cfg.seed}

Machine: {MACHINE}; latency = median of {cfg.measure.repeats} onnxruntime runs of one
{cfg.data.clip_length}x{cfg.data.height}x{cfg.data.width} clip (masks for all {cfg.data.clip_length} frames),
deployed session settings, models timed round-robin in groups; throughput = 1000 / mean latency (clips per
second, as msnas-hw; the paper measured TP separately). Trained widths: C = {cfg.trained_channels} at scale 0
(paper C = {cfg.supernet.channels}), {cfg.supernet.layers} layers x {cfg.supernet.scales} scales.
Data: phantom cine patients (app.data.phantom), split by patient as msnas-hw (same seed, same split).
Retraining: {cfg.retrain.steps} steps of {cfg.retrain.batch_size} clips per network; Dice on the held-out
patients, every frame (mean ± std over patients).

Loss of the architecture step: `L = {'CE * (L_t / L_ub)' if cfg.search.latency_loss == 'product' else 'CE'} + lambda * exp((L_t - L_ub) / tau)` with lambda =
{cfg.search.penalty_lambda:g}, tau = {cfg.search.penalty_tau_ms:g} ms (L_t = expected latency from the lookup
table, eq. 3-5, softmax weights). Weights: SGD momentum {cfg.search.momentum}, lr {cfg.search.weight_lr} ->
{cfg.search.weight_lr_min} cosine, wd {cfg.search.weight_decay}. Search: {cfg.search.warmup_steps} warm-up +
{cfg.search.search_steps} alternating steps on proxy clips {cfg.search.proxy_clip}{search_options(cfg.search)}.

## Constraint rounds ({REALTIME.describe()}, checked on the measured GA network with N_l = {cfg.rounds.check_paths})

{rounds_markdown(rounds)}

## Derivation on the final round's {'picked ' if derivation.get('pick') else ''}cells (gene pool = {pool_words(cfg, derivation)})
{pick_paragraph(derivation)}
{pool}

GA: population {cfg.ga.population}, {cfg.ga.generations} generations, crossover {cfg.ga.crossover_rate}, mutation
{cfg.ga.mutation_rate}, elite {cfg.ga.elite}; fitness = lookup-table latency of the fused network.

{ga_lines}

## Table 1: top-weight (MS-NAS "Dijkstra") vs GA on the same searched cells{table1_pool_words(derivation)}

{t1}

## Table 2: RT-DNAS networks vs the baselines of msnas-hw's run (same data, clips, widths, machine)

{t2}

Baseline rows were trained and timed by `python -m search msnas-hw` in its own run (its latency session,
not interleaved with ours): small load differences between the two sessions shift both columns alike only
approximately.

## Row trainings that collapsed

{rows_restarts_markdown({**rows, **full_cloud(cloud)}, cfg.retrain.restart_floor, cfg.retrain.seg_restarts)}

## Fig. 2

![fig2](fig2.png)

{cloud_paragraph}

## Targets

{chr(10).join(check_targets(cfg, rows, baselines, cloud))}

## The RT-DNAS paper for reference (P100 GPU, ACDC; RV / MYO / LV / average / LT ms / TP FPS)

""" + "\n".join(f"- {k}: {v}" for k, v in {**{f'{m} N_l={n}': v for (m, n), v in PAPER_TABLE1.items()}, **PAPER_TABLE2}.items()) + "\n"
    (folder / "report.md").write_text(text)
    write_results_json(cfg, folder / "results.json", results, derivation, rounds, baselines)
    return folder / "report.md"


def _row_summary(cfg: RtdnasConfig, r: Mapping[str, Any]) -> dict[str, Any]:
    d = r.get("dice") or {}
    lat = r.get("latency") or {}
    return {"name": r.get("name"), "dice": {k: d.get(k) for k in ("per_class", "mean", "std")},
            "latency_p50_ms": lat.get("p50_ms"), "latency_mean_ms": lat.get("mean_ms"), "fps": lat.get("fps"),
            "lut_ms": r.get("lut_ms"), "meets_50ms_22fps": meets(cfg, r), "params": r.get("params"),
            "paths": r.get("genotype_paths"), "same_network_as": r.get("same_network_as"),
            "seg_training": r.get("seg_training")}


def write_results_json(cfg: RtdnasConfig, path: Path, results: Mapping[str, Any], derivation: Mapping[str, Any],
                       rounds: Sequence[Mapping[str, Any]], baselines: Mapping[str, Any]) -> Path:
    """Machine-readable numbers behind the report (no per-patient details, no weights)."""
    import json

    doc = {
        "method": "rtdnas", "preset": cfg.preset, "seed": cfg.seed, "machine": MACHINE,
        "budget": {"latency_ms": cfg.measure.realtime_latency_ms, "fps": cfg.measure.realtime_fps},
        "rounds": [{k: v for k, v in r.items() if k != "measured"} | {"p50_ms": r["measured"]["p50_ms"],
                                                                       "fps": r["measured"]["fps"]} for r in rounds],
        "derivation": {"pool": derivation["pool"], "by_n": derivation["by_n"]},
        "rows": {k: _row_summary(cfg, r) for k, r in results["rows"].items()},
        "cloud": {k: _row_summary(cfg, r) for k, r in results["cloud"].items()},
        "baselines_msnas_hw": {k: _row_summary(cfg, b) for k, b in baselines.items()},
        "targets": check_targets(cfg, results["rows"], baselines, results["cloud"]),
    }
    path.write_text(json.dumps(doc, indent=1, allow_nan=True))
    return path


def summary_lines(rows: Mapping[str, Any]) -> list[str]:
    return [f"{k}: Dice {r['dice']['mean']:.3f}, {_lat(r)[0]:.1f} ms" for k, r in rows.items()]
