"""Why does ours n=1 stay below MS-NAS n=4? One path, or the width, against the same seed's MS-NAS n=4.

For each msnas-hw pick run folder (``python -m search msnas-hw --rows msnas_n4 ours_n1 ours_n1_pick
--cell-candidates K``, see ``bench/msnas_pick.py``) this trains two diagnostic networks in the run's harness (its
split, its 250-step schedule, ours n=1's training seed) and scores them beside the run's own rows:

* **MS-NAS n=1**: the MS-NAS search (no latency term) decoded at n = 1 (its cells, its top path). Against MS-NAS n=4
  it says what fusing four paths buys; against ours n=1 what the latency term's choice costs at one path.
* **picked, paper width**: the picked ours n=1 at the paper's width (``width_divisor`` 1: twice the trained
  width): what width buys the picked cells and path.

Every network is scored on the run's test patients and on ``--fresh-patients`` fresh phantom patients (in no
split), and all are timed together in one process (warm blocks, the app's threads). The diagnostic networks are
trained under ``<work>/<kind>/seed<S>`` (resumable: a trained row is read back).

    python bench/msnas_capacity.py runs/msnas/pick runs/msnas/pick-seed1 ... --out docs/bench/msnas_capacity

Writes ``<out>.json`` and ``<out>.md`` with ``uptime`` before and after the timing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/msnas_capacity.py``
    sys.path.insert(0, str(ROOT))

from bench.msnas_pick import (clip_shape, fresh_patients, fresh_score, load_run, paired_gap,  # noqa: E402
                              time_networks, trained_network)
from bench.report import machine_words, write_report  # noqa: E402

#: The columns: the run's rows, then the diagnostic ones.
RUN_ROWS = ("msnas_n4", "ours_n1", "ours_n1_pick")
EXTRA = ("msnas_n1", "pick_wide")
NAMES = {"msnas_n4": "MS-NAS n=4", "ours_n1": "ours n=1", "ours_n1_pick": "ours n=1 picked",
         "msnas_n1": "MS-NAS n=1", "pick_wide": "picked, paper width"}


def _harness(run: Mapping[str, Any], cfg, folder: Path, say) -> Any:
    """An experiment over ``folder`` sharing the run's split and rendered patients (so the same test patients)."""
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(run["folder"]) / "split.json", folder / "split.json")
    cases = folder / "cases"
    if not cases.exists():
        cases.symlink_to((Path(run["folder"]) / "cases").resolve())
    return MsnasHwExperiment(cfg, folder, progress=say)


def train_extras(run: Mapping[str, Any], work: Path, say=print) -> dict[str, tuple[Any, Any, dict]]:
    """kind -> (config, row, result) of the two diagnostic networks of one run, trained (or read back)."""
    from search.core.genotypes import MultiscaleGenotype
    from search.methods.msnas_hw import space
    from search.train.cine_config import RowSpec

    cfg, folder, seed = run["cfg"], Path(run["folder"]), run["seed"]
    out = {}
    # MS-NAS n=1: the MS-NAS search's supernet decoded at one path
    n1 = RowSpec("MS-NAS (n=1)", "msnas_n1", "msnas", n_paths=1, latency_aware=False, search="msnas")
    with_n1 = replace(cfg, rows=cfg.rows + (n1,))
    ours = next(r for r in with_n1.rows if r.key == "ours_n1")
    checkpoint = folder / "searches" / "msnas" / "checkpoint.pt"
    g1 = space.decode(space.load_searched_supernet(cfg, checkpoint), 1)
    g4 = MultiscaleGenotype.from_json(json.dumps(run["results"]["msnas_n4"]["genotype"]))
    if g1.cells != g4.cells or g1.paths[0] not in g4.paths:
        raise SystemExit(f"{checkpoint}: does not decode the run's MS-NAS n=4 (its cells and one of its paths)")
    res = _harness(run, with_n1, work / "msnas_n1" / f"seed{seed}", say).train_row(n1, g1, seed_row=ours)
    out["msnas_n1"] = (with_n1, n1, res, work / "msnas_n1" / f"seed{seed}" / "rows" / "msnas_n1" / "weights.pt")
    # the picked network at the paper's width
    wide = replace(cfg, width_divisor=1)
    picked = next(r for r in wide.rows if r.key == "ours_n1_pick")
    g = MultiscaleGenotype.from_json(json.dumps(run["results"]["ours_n1_pick"]["genotype"]))
    exp = _harness(run, wide, work / "pick_wide" / f"seed{seed}", say)
    res = exp.train_row(picked, g, seed_row=next(r for r in wide.rows if r.key == "ours_n1"))
    out["pick_wide"] = (wide, picked, res, work / "pick_wide" / f"seed{seed}" / "rows" / "ours_n1_pick" / "weights.pt")
    return out


def markdown(doc: Mapping[str, Any]) -> str:
    """One row per seed: test / fresh Dice and ms of every network, then the means."""
    cols = RUN_ROWS + EXTRA
    t = doc["timing"]
    lines = ["# msnas-hw: one path or width? MS-NAS n=1 and the picked ours n=1 at the paper's width (issue 16)", "",
             f"Runs: {', '.join('`' + r['folder'] + '`' for r in doc['rows'])}; the diagnostic networks trained in "
             f"each run's harness ({doc['retrain_steps']} steps, ours n=1's seed, its split) under `{doc['work']}`. "
             f"Dice: the run's {doc['test_patients']} test patients / {doc['fresh_patients']} fresh phantom patients "
             f"(phantom seed {doc['phantom_seed']}, in no split). Latency: median ms per {doc['clip']} clip, all "
             f"{len(doc['rows']) * len(cols)} networks in one process in warm blocks ({t['rounds']} rounds x "
             f"{t['runs_per_block']} runs, {t['threads']} threads), {doc['machine']}; `uptime` before: "
             f"{t['uptime_before']}; after: {t['uptime_after']}.", "",
             "| seed | " + " | ".join(NAMES[c] for c in cols) + " | fresh gap to MS-NAS n=4: MS-NAS n=1 / picked / "
             "picked paper width |", "|---|" + "---|" * (len(cols) + 1)]
    for r in doc["rows"]:
        cells = [f"{r['test'][c]:.3f} / {r['fresh'][c]['mean']:.3f} ({r['ms'][c]:.1f} ms)" for c in cols]
        gaps = " / ".join(f"{r['fresh_gap'][c]['mean']:+.3f}" for c in ("msnas_n1", "ours_n1_pick", "pick_wide"))
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {gaps} |")
    m = doc["summary"]
    lines += ["", "Means over the seeds (fresh Dice; ms): " + "; ".join(
        f"{NAMES[c]} {m[c]['fresh']:.3f}, {m[c]['ms']:.1f} ms" for c in cols) + ".", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="msnas-hw run folders made with --cell-candidates")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "msnas" / "capacity",
                   help="where the diagnostic networks are trained (resumable)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "msnas_capacity", help="writes OUT.json, OUT.md")
    p.add_argument("--fresh-patients", type=int, default=20, metavar="N", help="fresh phantom patients (default 20)")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default 2, the app's)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    p.add_argument("--runs-per-block", type=int, default=10, help="timed runs per warm block (default 10)")
    args = p.parse_args(argv)
    if args.fresh_patients < 1:
        raise SystemExit(f"--fresh-patients must be >= 1, got {args.fresh_patients}")
    import torch

    from app.engine.benchmark import uptime_text
    from bench.fresh_draws import FRESH_SEED

    runs = [load_run(f) for f in args.runs]
    if len({r["seed"] for r in runs}) != len(runs):
        raise SystemExit("two run folders of the same seed")
    torch.set_num_threads(args.threads)
    cases, data = fresh_patients(runs, args.fresh_patients)
    rows, nets = [], {}
    for run in runs:
        cfg, folder = run["cfg"], Path(run["folder"])
        networks = {k: (cfg, next(r for r in cfg.rows if r.key == k), run["results"][k],
                        folder / "rows" / k / "weights.pt") for k in RUN_ROWS}
        networks.update(train_extras(run, args.work, say=lambda m, s=run["seed"]: print(f"[seed {s}] {m}", flush=True)))
        row = {"seed": run["seed"], "folder": run["folder"], "test": {}, "fresh": {}}
        for kind, (c, spec, result, weights) in networks.items():
            net = trained_network(c, spec, result, weights)
            row["test"][kind] = float(result["dice"]["mean"])
            row["fresh"][kind] = fresh_score(net, cases, data)
            nets[(run["seed"], kind)] = (net, clip_shape(c))
            print(f"seed {run['seed']} {kind}: test {row['test'][kind]:.3f} fresh {row['fresh'][kind]['mean']:.3f}",
                  flush=True)
        row["fresh_gap"] = {k: paired_gap(row["fresh"]["msnas_n4"], row["fresh"][k]) for k in RUN_ROWS[1:] + EXTRA}
        rows.append(row)
    timing = {"threads": args.threads, "rounds": args.rounds, "runs_per_block": args.runs_per_block,
              "uptime_before": uptime_text()}
    ms = time_networks(nets, threads=args.threads, rounds=args.rounds, runs_per_block=args.runs_per_block)
    timing["uptime_after"] = uptime_text()
    for row in rows:
        row["ms"] = {k: ms[(row["seed"], k)] for k in RUN_ROWS + EXTRA}
    cfg = runs[0]["cfg"]
    doc = {"rows": rows, "timing": timing, "work": str(args.work), "fresh_patients": args.fresh_patients,
           "phantom_seed": FRESH_SEED, "test_patients": runs[0]["test_patients"], "retrain_steps": cfg.retrain.steps,
           "clip": "x".join(map(str, clip_shape(cfg)[2:])),
           "machine": machine_words(),
           "summary": {k: {"fresh": float(np.mean([r["fresh"][k]["mean"] for r in rows])),
                           "test": float(np.mean([r["test"][k] for r in rows])),
                           "ms": float(np.mean([r["ms"][k] for r in rows]))} for k in RUN_ROWS + EXTRA}}
    write_report(args.out, doc, markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
