"""Does rtdnas find the same quality over search seeds? (issue 16: "over 3 seeds, every final network is
within budget, and the spread of their Dice is <= 0.03").

For each seed, the default preset's own stages of ``python -m search rtdnas`` (``RtdnasExperiment``): the
latency table (profiled once, then shared by the seeds: same machine and keys), the patient split (the
same patients for every seed), the constraint rounds of the search, the GA derivation, then the *final
network* -- the GA network of ``--paths`` N_l (7: the shipped configuration) -- retrained with the
preset's schedule and timed with onnxruntime (within budget: ``app.realtime.REALTIME``, p95 <= 50 ms and
>= 22 FPS). Cloud and Table 1 rows are left out (they do not decide the spread).

``--cap M`` adds, for every seed, the same search's cells decoded with at most M weight-free ops per cell
(``RtdnasConfig.cell_max_free_ops``, P-DARTS' cap) from the saved supernet of the final round: the search
is not rerun, only the derivation and the final network (folder ``seed<k>/cap<M>``, its latency table,
split and rendered patients hard-linked from the seed's folder)::

    python bench/rtdnas_seeds.py --seeds 0 1 2 --cap 1 --out runs/rtdnas/seeds \\
        --json docs/bench/rtdnas_seeds.json --md docs/bench/rtdnas_seeds.md

Resumable (every stage reads its result back). One CPU-heavy job: the preset's thread count (1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` as hard links of ``src``'s files (a file or a folder); existing files are kept."""
    if src.is_file():
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
        return
    for f in src.rglob("*"):
        if f.is_file():
            _link_tree(f, dst / f.relative_to(src))


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pick_paths(derivation: dict, ub_ms: float, n_paths: int, pick: str) -> int:
    """N_l of the final network: ``n_paths`` (``pick="fixed"``), or the largest derived N_l <= ``n_paths`` whose GA
    network's lookup-table latency fits ``ub_ms`` (``"budget"``; the smallest derived N_l when none does)."""
    if pick == "fixed":
        return n_paths
    by_n = {int(n): d["latency_ms"] for n, d in derivation["by_n"].items() if int(n) <= n_paths}
    fitting = [n for n, ms in by_n.items() if ms <= ub_ms]
    return max(fitting) if fitting else min(by_n)


def final_network(exp, final: dict, table, n_paths: int, pick: str = "fixed") -> dict:
    """Derive on ``final``'s cells, retrain and time the GA network of ``n_paths`` paths (or, with ``pick="budget"``,
    of the most paths that fit the round's L_ub by the lookup table); its row result."""
    from search.core.genotypes import MultiscaleGenotype

    derivation = exp.derive(final, table)
    n_paths = pick_paths(derivation, final["ub_ms"], n_paths, pick)
    key = f"ga_n{n_paths}"
    g = exp.genotypes(derivation)[key]
    rows = {key: exp._train(key, f"GA (N_l={n_paths})", g)}
    exp.measure(rows)
    res = exp.results(rows, {})["rows"][key]
    g = MultiscaleGenotype.from_dict(res["genotype"])
    return {"n_paths": n_paths, "cells": derivation["cells"], "paths": [list(p.kinds) for p in g.paths],
            "params": res["params"],
            "dice": res["dice"], "latency": res["latency"], "lut_ms": res["lut_ms"], "meets": res["meets"]}


def with_search(cfg, args: argparse.Namespace):
    """The preset with the search overrides of the command line (``--search-steps``, ``--arch-lr``, ...)."""
    search = cfg.search
    if args.search_steps is not None:
        search = replace(search, warmup_steps=args.search_steps[0], search_steps=args.search_steps[1])
    if args.arch_lr is not None:
        search = replace(search, arch_lr=args.arch_lr)
    if args.arch_weight_decay is not None:
        search = replace(search, arch_weight_decay=args.arch_weight_decay)
    return replace(cfg, search=search)


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    import torch

    from search.core.genotypes import CellGenotype
    from search.methods.rtdnas import space
    from search.methods.rtdnas.config import preset
    from search.methods.rtdnas.experiment import RtdnasExperiment

    cfg = with_search(preset(args.preset, seed=seed), args)
    if args.paths not in (*cfg.table1_paths, *cfg.sweep_paths):
        raise SystemExit(f"--paths {args.paths}: the {args.preset} preset derives N_l in "
                         f"{cfg.table1_paths + cfg.sweep_paths}")
    shared = args.out / "shared"
    folder = args.out / f"seed{seed}"
    exp = RtdnasExperiment(cfg, folder, msnas_dir=shared, progress=_say)  # seeds its table from shared/
    exp._check_config()
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    table = exp.latency_table()
    if not (shared / "latency_table.json").is_file():
        shared.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / "latency_table.json", shared / "latency_table.json")
    exp.helper.split  # noqa: B018  (renders the patients and writes the split)
    final = exp.search_rounds(table)
    search_s = time.perf_counter() - t0
    doc = {"seed": seed, "round": final["round"], "ub_ms": final["ub_ms"], "final_l_t_ms": final["final_l_t_ms"],
           "search_seconds": final["seconds"], "convergence": final.get("convergence", {}).get("converged"),
           "convergence_mean_drop": final.get("convergence", {}).get("mean_relative_drop"),
           "argmax": final_network(exp, final, table, args.paths, args.pick)}
    if args.cap is not None:
        cap_cfg = replace(cfg, cell_max_free_ops=args.cap)
        sub = folder / f"cap{args.cap}"
        for name in ("latency_table.json", "split.json", "cases"):
            if (folder / name).exists():
                _link_tree(folder / name, sub / name)
        exp_cap = RtdnasExperiment(cap_cfg, sub, msnas_dir=shared, progress=_say)
        exp_cap._check_config()
        supernet = space.build_supernet(cfg, seed=cfg.seed + 101)
        supernet.load_state_dict(torch.load(folder / "rounds" / f"r{final['round']}" / "supernet.pt",
                                            map_location="cpu"))
        cells = space.decode_cells(supernet, args.cap)
        if {k: CellGenotype.from_dict(v) for k, v in final["cells"].items()} != space.decode_cells(supernet):
            raise SystemExit(f"{folder}: the saved supernet of round {final['round']} does not derive the round's cells")
        capped = {**final, "cells": {k: c.to_dict() for k, c in cells.items()}}
        doc[f"cap{args.cap}"] = final_network(exp_cap, capped, table, args.paths, args.pick)
    doc["seconds"] = time.perf_counter() - t0
    doc["search_and_table_seconds"] = search_s
    doc["search_config"] = {k: getattr(cfg.search, k) for k in ("warmup_steps", "search_steps", "arch_lr",
                                                                  "arch_weight_decay", "batch_size")}
    doc["schedule"] = (f"search {cfg.search.warmup_steps} warm-up + {cfg.search.search_steps} alternating steps "
                       f"(arch lr {cfg.search.arch_lr:g}, arch weight decay {cfg.search.arch_weight_decay:g}) on "
                       f"{'x'.join(map(str, cfg.search.proxy_clip or ()))} proxy clips, the final network retrained "
                       f"{cfg.retrain.steps} steps of {cfg.retrain.batch_size} clips, timed at "
                       f"{cfg.data.clip_length}x{cfg.data.height}x{cfg.data.width}")
    return doc


def _free_ops(cells: dict) -> dict:
    from search.core.ops import PARAMETER_FREE_OPS

    return {k: sum(op in PARAMETER_FREE_OPS for _, _, op in c["edges"]) for k, c in cells.items()}


def markdown(result: dict) -> str:
    variants = ["argmax"] + ([f"cap{result['cap']}"] if result["cap"] is not None else [])
    final = (f"GA N_l = {result['paths']}" if result.get("pick", "fixed") == "fixed" else
             f"the GA network of the most paths (N_l <= {result['paths']}) that fits L_ub by the lookup table")
    lines = [f"# rtdnas over search seeds ({result['preset']} preset, final network = {final})", "",
             f"Machine: {result['machine']}; torch {result['torch_threads']} thread(s), onnxruntime as the app "
             f"(2 intra-op threads). {result['started']} to {result['finished']} UTC, load average "
             f"{result['loadavg_start']} at the start, {result['loadavg_end']} at the end. Made by "
             f"`python bench/rtdnas_seeds.py {' '.join(result['argv'])}`.", "",
             f"Each seed: its own search, the GA derivation, then the final network ({result['seeds'][0]['schedule']}); "
             "Dice on the same held-out phantom patients for every seed (mean ± std over patients). "
             "`argmax`: the cells as the search derives them (the paper); "
             f"`cap{result['cap']}`: the same search's cells with at most {result['cap']} weight-free op(s) per cell "
             "(P-DARTS' cap; the search is not rerun).", "",
             "| derivation | seed | weight-free ops per cell (ep / ns / ct) | N_l | params | LUT ms | Dice | RV / MYO / LV "
             "| p50 / p95 ms | FPS | within budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        for s in result["seeds"]:
            r = s[v]
            free = _free_ops(r["cells"])
            pc = r["dice"]["per_class"]
            lat = r["latency"] or {}
            lines.append(f"| {v} | {s['seed']} | {free.get('ep')} / {free.get('ns')} / {free.get('ct')} | "
                         f"{r.get('n_paths', len(r['paths']))} | {r['params']:,} | {r['lut_ms']:.1f} | "
                         f"{r['dice']['mean']:.3f} ± {r['dice']['std']['mean']:.3f} | "
                         f"{pc['RV']:.3f} / {pc['MYO']:.3f} / {pc['LV']:.3f} | {lat.get('p50_ms', float('nan')):.1f} / "
                         f"{lat.get('p95_ms', float('nan')):.1f} | {lat.get('fps', float('nan')):.0f} | "
                         f"{'yes' if r['meets'] else 'NO'} |")
    lines += ["", "| derivation | Dice per seed | spread (max - min) | all within budget | target (spread <= .03, all within) |",
              "|---|---|---|---|---|"]
    for v in variants:
        s = result["summary"][v]
        lines.append(f"| {v} | {' / '.join(f'{d:.3f}' for d in s['dice'])} | {s['spread']:.3f} | "
                     f"{'yes' if s['all_meet'] else 'no'} | {'met' if s['target_met'] else 'missed'} |")
    lines += ["", "Search convergence per seed (issue 16's verdict on the architecture weights): "
              + "; ".join(f"seed {s['seed']}: {'converged' if s['convergence'] else 'not converged'}"
                          f" (mean entropy drop {100 * (s['convergence_mean_drop'] or 0):.0f}%)" for s in result["seeds"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", choices=("smoke", "default"), default="default")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "rtdnas" / "seeds")
    p.add_argument("--paths", type=int, default=7, help="N_l of the final network (default 7, as shipped)")
    p.add_argument("--pick", choices=("fixed", "budget"), default="fixed",
                   help="fixed: the final network has --paths paths; budget: the most paths (<= --paths) whose GA "
                        "network fits the search's L_ub by the lookup table")
    p.add_argument("--cap", type=int, default=None, metavar="M",
                   help="also derive each search's cells with at most M weight-free ops per cell")
    p.add_argument("--search-steps", type=int, nargs=2, metavar=("WARMUP", "SEARCH"), default=None,
                   help="override the preset's warm-up and alternating search steps")
    p.add_argument("--arch-lr", type=float, default=None, help="override the preset's architecture learning rate")
    p.add_argument("--arch-weight-decay", type=float, default=None,
                   help="override the preset's architecture weight decay (DARTS' 1e-3)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    args = p.parse_args(argv)
    if args.cap is not None and args.cap < 0:
        p.error("--cap must be >= 0")
    if args.search_steps is not None and min(args.search_steps) < 0:
        p.error("--search-steps must be >= 0")

    from app.engine.benchmark import load_average
    from app.engine.replay import machine_description

    started, load_start = time.strftime("%Y-%m-%d %H:%M"), load_average()
    seeds = []
    for seed in args.seeds:
        _say(f"seed {seed}")
        seeds.append(run_seed(seed, args))
    import torch

    variants = ["argmax"] + ([f"cap{args.cap}"] if args.cap is not None else [])
    summary = {}
    for v in variants:
        dice = [s[v]["dice"]["mean"] for s in seeds]
        meet = all(s[v]["meets"] for s in seeds)
        spread = max(dice) - min(dice)
        summary[v] = {"dice": dice, "spread": spread, "all_meet": meet,
                      "target_met": bool(meet and spread <= 0.03 and len(seeds) >= 3)}
    result = {"argv": sys.argv[1:] if argv is None else argv, "machine": machine_description(),
              "torch_threads": torch.get_num_threads(), "started": started, "finished": time.strftime("%Y-%m-%d %H:%M"),
              "loadavg_start": load_start, "loadavg_end": load_average(), "preset": args.preset, "paths": args.paths, "pick": args.pick,
              "cap": args.cap,
              "seeds": seeds, "summary": summary}
    for v, s in summary.items():
        _say(f"{v}: Dice {' / '.join(f'{d:.3f}' for d in s['dice'])}, spread {s['spread']:.3f}, "
             f"all within budget {s['all_meet']}, target {'met' if s['target_met'] else 'missed'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float))
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
