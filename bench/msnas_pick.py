"""Does picking ours n=1 among candidates close msnas-hw's Dice gap to MS-NAS n=4? Runs of several seeds, one table.

``python -m search msnas-hw --rows msnas_n4 ours_n1 ours_n1_pick --cell-candidates K --candidate-paths P`` trains,
in one run folder and one harness, MS-NAS n=4, ours n=1 (the latency-aware search's argmax) and ours n=1 picked
(the best of K candidates on the architecture patients, ``pick.json``). This bench reads such folders (one per
search seed), rebuilds the three trained networks of each from their ``result.json`` genotype and ``weights.pt``,
exports them at the trained clip and times all of them in one process (``search.latency.measure.measure_blocks``:
each network a warm block of back-to-back runs per round, as the app runs a model, ``--rounds`` rounds in a seeded
shuffled order, the app's ``--threads``), so the latency ratios are paired in time. Dice comes from the runs (every
frame of every clip of the run's test patients).

Per seed: the three Dice, MS-NAS n=4 minus each ours (the issue's target: <= .01), the measured ms per clip and the
ratios to MS-NAS n=4 (the paper's target for ours n=1: <= 0.3x), the picked candidate; and over the seeds the mean
gaps and the paired change picked - argmax.

    python bench/msnas_pick.py runs/msnas/pick runs/msnas/pick-seed1 runs/msnas/pick-seed2 --out docs/bench/msnas_pick

``--fresh-patients N`` scores the three trained networks of every seed again on N fresh phantom cine patients
(``bench/fresh_draws``' phantom seed, in no split; the same patients for every network): mean Dice with a bootstrap
95% CI over patients, and each ours' gap to MS-NAS n=4 paired by patient (mean and 95% CI). Four test patients per
run leave each gap uncertain by several hundredths; the fresh patients judge the Dice target on more.

Writes ``<out>.json`` and ``<out>.md`` with the load average (and ``uptime``) before and after the timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/msnas_pick.py``
    sys.path.insert(0, str(ROOT))

from bench.report import machine_words, write_report  # noqa: E402

ROWS = ("msnas_n4", "ours_n1", "ours_n1_pick")
#: The issue's Dice target for ours n=1 against MS-NAS n=4, and the paper's latency ratio.
DICE_GAP, LATENCY_RATIO = 0.01, 0.3


def load_run(folder: Path) -> dict[str, Any]:
    """A run folder's configuration, pick and the results of the three rows.

    Raises:
        SystemExit: one line naming the folder and what is missing or wrong.
    """
    from search.methods.msnas_hw.config import MsnasHwConfig
    from search.report.sections import config_from_dict

    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
        pick = json.loads((folder / "pick.json").read_text())
        results = {k: json.loads((folder / "rows" / k / "result.json").read_text()) for k in ROWS}
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{folder}: not a finished msnas-hw run with the rows {', '.join(ROWS)} and pick.json "
                         f"({exc})") from None
    if "pick" not in config:
        raise SystemExit(f"{folder}: made without --cell-candidates (no ours_n1_pick row)")
    try:
        cfg = config_from_dict(MsnasHwConfig, config)
        test = json.loads((folder / "split.json").read_text())["test"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{folder}: its config.json or split.json cannot be read back ({exc})") from None
    return {"folder": str(folder), "cfg": cfg, "seed": int(config["seed"]), "pick": pick, "results": results,
            "test_patients": len(test)}


def seed_row(run: Mapping[str, Any], ms: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One seed's figures: Dice of the three rows, the gaps to MS-NAS n=4, latencies and ratios (``ms``: row -> ms)."""
    dice = {k: float(run["results"][k]["dice"]["mean"]) for k in ROWS}
    pick = run["pick"]
    picked = pick["candidates"][pick["picked"]]
    cfg = run["cfg"]
    out = {
        "seed": run["seed"], "folder": run["folder"], "dice": dice, "preset": cfg.preset,
        "retrain_steps": cfg.retrain.steps, "test_patients": run["test_patients"],
        "clip": [cfg.data.clip_length, cfg.data.height, cfg.data.width],
        "gap": {k: dice["msnas_n4"] - dice[k] for k in ROWS[1:]},
        "picked_minus_argmax": dice["ours_n1_pick"] - dice["ours_n1"],
        "picked": {"index": pick["picked"], "source": picked["source"], "path": picked["path"],
                   "lut_ms": picked["lut_ms"], "bound_ms": pick["bound_ms"],
                   "trained": sum("val_dice" in c for c in pick["candidates"]), "candidates": len(pick["candidates"])},
        "params": {k: int(run["results"][k]["params"]) for k in ROWS},
    }
    if ms is not None:
        out["ms"] = dict(ms)
        out["ratio_to_msnas_n4"] = {k: ms[k] / ms["msnas_n4"] for k in ROWS[1:]}
    return out


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means over the seeds and whether each ours meets the targets on every seed."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in rows]}
    for k in ROWS[1:]:
        gaps = [r["gap"][k] for r in rows]
        out[k] = {"mean_gap": float(np.mean(gaps)), "max_gap": float(np.max(gaps)),
                  "dice_target_met_every_seed": bool(all(g <= DICE_GAP for g in gaps))}
        if all("ratio_to_msnas_n4" in r for r in rows):
            ratios = [r["ratio_to_msnas_n4"][k] for r in rows]
            out[k]["max_ratio"] = float(np.max(ratios))
            out[k]["latency_target_met_every_seed"] = bool(all(x <= LATENCY_RATIO for x in ratios))
    if all("fresh" in r for r in rows):
        out["fresh"] = {k: {"mean_gap": float(np.mean([r["fresh"]["gap"][k]["mean"] for r in rows])),
                            "seeds_met": [r["seed"] for r in rows if r["fresh"]["gap"][k]["mean"] <= DICE_GAP]}
                        for k in ROWS[1:]}
    changes = [r["picked_minus_argmax"] for r in rows]
    out["picked_minus_argmax"] = {"mean": float(np.mean(changes)), "min": float(np.min(changes)),
                                  "max": float(np.max(changes))}
    return out


def trained_network(cfg, row, result: Mapping[str, Any], weights: Path):
    """A trained row network rebuilt from its ``result.json`` genotype and ``weights.pt``, in eval mode."""
    import torch

    from search.core.genotypes import MultiscaleGenotype
    from search.train.row_networks import build_row_network

    g = MultiscaleGenotype.from_json(json.dumps(result["genotype"]))  # what the row trained
    net = build_row_network(cfg, row, genotype=g)
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    return net.eval()


def fresh_patients(runs: Sequence[Mapping[str, Any]], n_patients: int) -> tuple[list, Any]:
    """``(cases, data config)``: ``n_patients`` fresh phantom patients (``FRESH_SEED``, indices 0..n-1, in no split),
    rendered once from the runs' data settings.

    Raises:
        SystemExit: the runs render their patients differently (other than by the phantom seed).
    """
    from dataclasses import replace

    from bench.fresh_draws import FRESH_SEED
    from search.train.clips import render_case

    data = {replace(r["cfg"].data, seed=FRESH_SEED) for r in runs}
    if len(data) != 1:
        raise SystemExit("the runs render their phantom patients differently: one fresh set cannot serve them all")
    (data,) = data
    print(f"fresh patients: rendering {n_patients} (phantom seed {FRESH_SEED})", flush=True)
    return [render_case(data, i).validate() for i in range(n_patients)], data


def fresh_score(net, cases: Sequence[Any], data) -> dict[str, Any]:
    """One network on the fresh patients: mean Dice, its bootstrap 95% CI over patients, the per-patient means."""
    from bench.fresh_draws import BOOTSTRAP, bootstrap_ci
    from search.train.cine_rows import evaluate_cases

    ev = evaluate_cases(net, cases, data)
    per = [float(p["mean"]) for p in ev["per_patient"].values()]
    return {"mean": float(ev["mean"]), "ci95": bootstrap_ci(per, n_boot=BOOTSTRAP, seed=0), "per_patient": per,
            "per_class": ev["per_class"]}


def paired_gap(reference: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """``reference`` minus ``other`` paired by patient (patients where either is NaN left out): mean, 95% CI."""
    from bench.fresh_draws import BOOTSTRAP, bootstrap_ci

    diff = np.asarray(reference["per_patient"]) - np.asarray(other["per_patient"])
    diff = diff[np.isfinite(diff)]
    return {"mean": float(diff.mean()) if diff.size else float("nan"),
            "ci95": bootstrap_ci(diff, n_boot=BOOTSTRAP, seed=0), "patients": int(diff.size)}


def fresh_evaluation(runs: Sequence[Mapping[str, Any]], n_patients: int, *, threads: int = 2) -> dict[int, dict[str, Any]]:
    """seed -> the three trained networks scored on ``n_patients`` fresh phantom patients (``fresh_patients``): per
    row the mean Dice, its bootstrap 95% CI over patients and the per-patient means; per ours the gap to MS-NAS n=4
    paired by patient.

    Raises:
        SystemExit: the runs render their patients differently (other than by the phantom seed).
    """
    import torch

    from bench.fresh_draws import FRESH_SEED

    cases, data = fresh_patients(runs, n_patients)
    torch.set_num_threads(threads)
    out: dict[int, dict[str, Any]] = {}
    for run in runs:
        cfg, scores = run["cfg"], {}
        for row in cfg.rows_named(ROWS):
            net = trained_network(cfg, row, run["results"][row.key], Path(run["folder"]) / "rows" / row.key / "weights.pt")
            scores[row.key] = fresh_score(net, cases, data)
            print(f"fresh patients: seed {run['seed']} {row.key}: Dice {scores[row.key]['mean']:.3f}", flush=True)
        gaps = {k: paired_gap(scores["msnas_n4"], scores[k]) for k in ROWS[1:]}
        out[run["seed"]] = {"patients": n_patients, "phantom_seed": FRESH_SEED, "dice": scores, "gap": gaps}
    return out


def time_runs(runs: Sequence[Mapping[str, Any]], *, threads: int, rounds: int, runs_per_block: int,
              seed: int = 0) -> dict[tuple[int, str], float]:
    """(seed, row) -> median ms per clip of the trained network, every network of every run in one process."""
    import torch

    torch.set_num_threads(1)
    nets = {}
    for run in runs:
        cfg = run["cfg"]
        for row in cfg.rows_named(ROWS):
            nets[(run["seed"], row.key)] = (trained_network(cfg, row, run["results"][row.key],
                                                            Path(run["folder"]) / "rows" / row.key / "weights.pt"),
                                            clip_shape(cfg))
    return time_networks(nets, threads=threads, rounds=rounds, runs_per_block=runs_per_block, seed=seed)


def clip_shape(cfg) -> tuple[int, ...]:
    """``(1, 1, T, H, W)``: one training clip of the run."""
    return (1, 1, cfg.data.clip_length, cfg.data.height, cfg.data.width)


def time_networks(nets: Mapping[Any, tuple[Any, tuple[int, ...]]], *, threads: int, rounds: int, runs_per_block: int,
                  seed: int = 0) -> dict[Any, float]:
    """name -> median ms per run of each ``(network, input shape)``, all exported to ONNX and timed in one process
    (``measure_blocks``: warm blocks in seeded shuffled rounds, ``threads`` intra-op threads)."""
    import torch

    from search.latency.measure import measure_blocks
    from search.latency.onnx_bytes import export_onnx_bytes

    names = list(nets)
    models = {str(i): export_onnx_bytes(net, torch.zeros(shape)) for i, (net, shape) in enumerate(nets.values())}
    stats = measure_blocks(models, warmup=3, runs=runs_per_block, rounds=rounds, intra_op_threads=threads, seed=seed)
    return {names[int(i)]: s.p50_ms for i, s in stats.items()}


def markdown(doc: Mapping[str, Any]) -> str:
    """The report: one row per seed, then the means."""
    names = {"msnas_n4": "MS-NAS n=4", "ours_n1": "ours n=1", "ours_n1_pick": "ours n=1 picked"}
    t = doc["timing"]
    first = doc["rows"][0]
    clip = "x".join(map(str, first["clip"]))
    lines = [
        "# msnas-hw: ours n=1 picked among candidates vs the argmax and MS-NAS n=4 (issue 16)", "",
        f"Runs: {', '.join('`' + r['folder'] + '`' for r in doc['rows'])}. Each is `python -m search msnas-hw --preset "
        f"{first['preset']} --seed S --rows msnas_n4 ours_n1 ours_n1_pick --cell-candidates {doc['pick']['candidates']} "
        f"--candidate-paths {doc['pick']['paths']}`: the three rows trained in one harness ({first['retrain_steps']} "
        f"steps), Dice over every frame of every clip of the run's {first['test_patients']} test patients. " + (
            "Latency: not timed (`--no-timing`)." if not t else
            f"Latency: median ms per {clip} clip of the trained networks, all {len(doc['rows']) * 3} timed in one "
            f"process in warm blocks ({t['rounds']} rounds x {t['runs_per_block']} runs, {t['threads']} threads), "
            f"{doc['machine']}, load {t['load_before']} before, {t['load_after']} after."), "",
        "| seed | MS-NAS n=4 | ours n=1 | ours n=1 picked | gap argmax / picked (target <= .01) | picked - argmax | "
        "ms n=4 / n=1 / picked | ratio to n=4 n=1 / picked (target <= 0.3) | picked candidate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        d, g, p = r["dice"], r["gap"], r["picked"]
        ms = r.get("ms") or {}
        ratio = r.get("ratio_to_msnas_n4") or {}
        lines.append(
            f"| {r['seed']} | {d['msnas_n4']:.3f} | {d['ours_n1']:.3f} | {d['ours_n1_pick']:.3f} | "
            f"{g['ours_n1']:.3f} / {g['ours_n1_pick']:.3f} | {r['picked_minus_argmax']:+.3f} | "
            + (f"{ms['msnas_n4']:.1f} / {ms['ours_n1']:.1f} / {ms['ours_n1_pick']:.1f} | "
               f"{ratio['ours_n1']:.2f} / {ratio['ours_n1_pick']:.2f} | " if ms else "- | - | ")
            + f"{p['index']} ({p['source']} cells, {p['path']} path; {p['trained']} of {p['candidates']} within "
              f"{p['bound_ms']:.1f} ms by the table) |")
    s = doc["summary"]
    if "fresh" in s:
        n = first["fresh"]["patients"]
        lines += ["", f"## On {n} fresh phantom patients (phantom seed {first['fresh']['phantom_seed']}, in no split)", "",
                  "The same trained networks, every frame of every clip of every slice; Dice mean [bootstrap 95% CI "
                  "over patients]; the gaps paired by patient.", "",
                  "| seed | MS-NAS n=4 | ours n=1 | ours n=1 picked | gap argmax (target <= .01) | gap picked |",
                  "|---|---|---|---|---|---|"]

        def cell(x: Mapping[str, Any]) -> str:
            lo_hi = x.get("ci95")
            return f"{x['mean']:.3f}" + (f" [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else "")

        for r in doc["rows"]:
            f = r["fresh"]
            lines.append(f"| {r['seed']} | " + " | ".join(cell(f["dice"][k]) for k in ROWS) + " | "
                         + " | ".join(cell(f["gap"][k]) for k in ROWS[1:]) + " |")
        lines += ["", "Fresh patients: " + "; ".join(
            f"{names[k]} mean gap {s['fresh'][k]['mean_gap']:.3f}, Dice target met on seed(s) "
            f"{', '.join(map(str, s['fresh'][k]['seeds_met'])) or 'none'}" for k in ROWS[1:]) + "."]
    lines += ["", f"Over seeds {', '.join(map(str, s['seeds']))}: "
              + "; ".join(f"{names[k]} mean gap {s[k]['mean_gap']:.3f} (max {s[k]['max_gap']:.3f}), Dice target "
                          f"{'met' if s[k]['dice_target_met_every_seed'] else 'missed'}"
                          + (f", latency ratio <= {s[k]['max_ratio']:.2f}" if "max_ratio" in s[k] else "")
                          for k in ROWS[1:])
              + f"; picked - argmax mean {s['picked_minus_argmax']['mean']:+.3f} (from {s['picked_minus_argmax']['min']:+.3f}"
                f" to {s['picked_minus_argmax']['max']:+.3f}).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="msnas-hw run folders made with --cell-candidates")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "msnas_pick", help="writes OUT.json, OUT.md")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2, the app's)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    p.add_argument("--runs-per-block", type=int, default=10, help="timed runs per warm block (default 10)")
    p.add_argument("--no-timing", action="store_true", help="Dice and the pick only")
    p.add_argument("--fresh-patients", type=int, default=None, metavar="N",
                   help="also score every trained network on N fresh phantom patients (in no split)")
    args = p.parse_args(argv)
    from app.engine.benchmark import load_average, uptime_text

    runs = [load_run(f) for f in args.runs]
    if len({r["seed"] for r in runs}) != len(runs):
        raise SystemExit("two run folders of the same seed")
    shared = {(r["cfg"].preset, r["cfg"].retrain.steps, r["cfg"].retrain.seg_restarts, r["test_patients"],
               r["cfg"].pick) for r in runs}
    if len(shared) != 1:
        raise SystemExit("the runs differ in preset, retraining steps, collapse restarts, test patients or pick: one "
                         "table compares seeds of one setting")
    timing, ms = None, None
    if not args.no_timing:
        timing = {"threads": args.threads, "rounds": args.rounds, "runs_per_block": args.runs_per_block,
                  "load_before": load_average(), "uptime_before": uptime_text()}
        ms = time_runs(runs, threads=args.threads, rounds=args.rounds, runs_per_block=args.runs_per_block)
        timing.update(load_after=load_average(), uptime_after=uptime_text())
    if args.fresh_patients is not None and args.fresh_patients < 1:
        raise SystemExit(f"--fresh-patients must be >= 1, got {args.fresh_patients}")
    rows = [seed_row(r, None if ms is None else {k: ms[(r["seed"], k)] for k in ROWS}) for r in runs]
    if args.fresh_patients:  # after the timing: the timing runs first, alone
        fresh = fresh_evaluation(runs, args.fresh_patients, threads=args.threads)
        for r in rows:
            r["fresh"] = fresh[r["seed"]]
    doc = {"rows": rows, "summary": summary(rows), "pick": dict(runs[0]["cfg"].pick.__dict__), "timing": timing,
           "machine": machine_words()}
    write_report(args.out, doc, markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
