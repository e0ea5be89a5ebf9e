"""What did each cine-skeleton search find, did it converge, and what did its network score? One table.

``python -m search cine-skeleton`` leaves in its run folder ``search.json`` (the derived and the initial-argmax
genotype, the convergence verdict with every decision's entropy drop, the softmax of every decision, the
predicted per-frame latency of the derived network and of the U-net 2D reference from this machine's op
table, steps per second) and ``report.json`` (the retraining curve, the shipped card's Dice and latency). This
reads those files for every run folder given and writes one Markdown + JSON report, with each run's entropy
plot copied beside it. It runs nothing: the figures are the runs' own (their machine and time are in the
cards; the latency columns are the cards' figures at export, each taken at its own time, so compare
latencies from ``python -m search retime`` or a fresh-draws run, not from here).

    python bench/cine_skeleton_runs.py runs/cine-skeleton/default-s0 runs/cine-skeleton/default-s0-l0 \
        --out docs/bench/cine_skeleton/runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_report


def run_row(folder: Path) -> dict:
    """One run folder's figures (``search.json`` + ``report.json``); a clear error naming a missing file."""
    found, report = folder / "search.json", folder / "report.json"
    for path in (found, report):
        if not path.is_file():
            raise SystemExit(f"error: {path}: missing (is {folder} a finished cine-skeleton run?)")
    s, r = json.loads(found.read_text()), json.loads(report.read_text())
    conv, cfg = s["convergence"], r["config"]
    card = r.get("card") or {}
    return {
        "run": folder.name, "blocks": cfg["blocks"], "relative_lambda": cfg["relative_lambda"], "seed": cfg["seed"],
        "genotype": s["genotype"], "initial_argmax": s["initial_argmax"], "converged": conv["converged"],
        "mean_entropy_drop": conv["mean_relative_drop"], "arch_steps": conv["arch_steps"],
        "reasons": conv["reasons"], "steps_per_second": s.get("steps_per_second"),
        "predicted_ms": s["predicted_ms"]["derived"], "reference_ms": s["predicted_ms"]["reference"],
        "reference": s["predicted_ms"]["reference_spec"], "card_dice": (card.get("dice") or {}).get("mean"),
        "card_p50_ms": (card.get("latency_ms") or {}).get("p50"), "shipped": r.get("shipped"),
        "final_loss": r["retrain_loss"][-1] if r.get("retrain_loss") else None,
        "probabilities": s.get("probabilities"), "search_only": bool(r.get("search_only")),
    }


def markdown(rows: list[dict]) -> str:
    lines = ["# cine-skeleton searches (issue 16)", "",
             "Each row is one `python -m search cine-skeleton` run (its folder's `search.json` and `report.json`). "
             "*Predicted* is the derived network's per-frame latency from the run's own op table (best of N, "
             "the app's threads), beside the U-net 2D (D3, IF16) reference from the same table. Card Dice: the "
             "retrained network on the card's test patients (the per-frame U-net 2D baseline's split and "
             "schedule). Converged: the entropy of the architecture weights fell by >= 20 % and the derived "
             "network differs from the argmax at initialisation (`search.core.convergence`).", "",
             "| run | seed | blocks | lambda | arch steps | derived | initial argmax | converged (entropy drop) "
             "| predicted ms (x reference) | card Dice | card p50 ms | final loss | search steps/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        drop = "-" if r["mean_entropy_drop"] is None else f"{100 * r['mean_entropy_drop']:.1f} %"
        ratio = r["predicted_ms"] / r["reference_ms"] if r["reference_ms"] else float("nan")
        dice = ("- (search only)" if r["search_only"] else "-") if r["card_dice"] is None else f"{r['card_dice']:.3f}"
        p50 = "-" if r["card_p50_ms"] is None else f"{r['card_p50_ms']:.2f}"
        loss = "-" if r["final_loss"] is None else f"{r['final_loss']:.3f}"
        lines.append(f"| {r['run']} | {r['seed']} | {' '.join(r['blocks'])} | {r['relative_lambda']:g} | {r['arch_steps']} | "
                     f"`{r['genotype']}` | "
                     f"`{r['initial_argmax']}` | {'yes' if r['converged'] else '**no**'} ({drop}) | "
                     f"{r['predicted_ms']:.2f} ({ratio:.2f}x `{r['reference']}`) | {dice} | {p50} | {loss} | "
                     f"{r['steps_per_second'] or '-'} |")
    lines += ["", "Softmax of every decision at the end of each search (blocks in the order of the *blocks* column; "
              "widths smallest first):", ""]
    for r in rows:
        probs = "; ".join(f"{k} {', '.join(f'{v:.2f}' for v in p)}" for k, p in (r["probabilities"] or {}).items())
        lines.append(f"- {r['run']}: {probs}")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="cine-skeleton run folders")
    ap.add_argument("--out", type=Path, default=Path("docs/bench/cine_skeleton/runs"),
                    help="report stem: <out>.md, <out>.json, <out>-<run>-entropy.png")
    args = ap.parse_args(argv)
    rows = [run_row(folder) for folder in args.runs]
    for folder, row in zip(args.runs, rows):
        plot = folder / "entropy.png"
        if plot.is_file():
            dest = args.out.parent / f"{args.out.name}-{row['run']}-entropy.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plot, dest)
    write_report(args.out, {"runs": rows}, markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
