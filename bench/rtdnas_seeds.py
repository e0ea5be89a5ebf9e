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

``--cell-candidates K`` adds the same search's cells picked among K candidates (``RtdnasConfig.pick``: the argmax
and K - 1 draws from the searched distribution, each as its GA network trained ``--candidate-steps`` steps on the
weight patients and scored on the architecture patients; folder ``seed<k>/pick<K>``); ``--retrain-candidates``
retrains every candidate with the preset's schedule too, to check that the short training ranks them right.
Several K (``--cell-candidates 4 8``) make one pick each, the larger reusing the smaller's trained candidates.
``--fresh-patients N`` scores every final network again on N fresh phantom patients (``bench/fresh_draws``' seed, in
no split): mean Dice with a bootstrap 95% interval, and each derivation's paired difference to the argmax network::

    python bench/rtdnas_seeds.py --seeds 0 1 2 3 4 5 --cell-candidates 4 --fresh-patients 20 \\
        --json docs/bench/rtdnas_seeds_pick_fresh.json --md docs/bench/rtdnas_seeds_pick_fresh.md

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


def _link_run_inputs(src: Path, dst: Path) -> None:
    """A variant folder ``dst`` beside a seed's run ``src``: its latency table, split and rendered patients, linked."""
    for name in ("latency_table.json", "split.json", "cases"):
        if (src / name).exists():
            _link_tree(src / name, dst / name)


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


#: Training replica ``t`` of a final network trains under master seed ``search seed + TRAIN_SEED_STRIDE * t``
#: (replica 0 is the network's own row, trained under the search seed as ``python -m search rtdnas`` does).
TRAIN_SEED_STRIDE = 7919


def retrain_replicas(exp, key: str, name: str, g, train_seeds: int, steps: int | None) -> list[dict]:
    """The final network ``g`` retrained again from scratch with other training seeds (and, with ``steps``, another
    schedule), each in ``<seed folder>/retrain[<steps>]/<variant>/t<k>`` beside the search (same patients, same
    latency table, hard-linked); its Dice per replica. Replica 0 at the preset's schedule is the row itself (not
    retrained here); with ``steps`` every replica 0..K-1 trains at that schedule. Resumable per replica."""
    from search.methods.rtdnas.experiment import RtdnasExperiment

    cfg = exp.cfg
    retrain = cfg.retrain if steps is None else cfg.retrain.with_steps(steps)
    derived = exp.out.name.startswith(("cap", "pick"))  # a variant folder inside the seed's
    base = exp.out.parent if derived else exp.out
    variant = exp.out.name if derived else "argmax"
    out = []
    for t in range(train_seeds):
        if t == 0 and steps is None:
            continue
        sub = base / f"retrain{'' if steps is None else steps}" / variant / f"t{t}"
        _link_run_inputs(base, sub)
        rep = RtdnasExperiment(replace(cfg, seed=cfg.seed + TRAIN_SEED_STRIDE * t, retrain=retrain), sub,
                               progress=_say)
        rep._check_config()
        res = rep.train_network(key, name, g)
        out.append({"train_seed": t, "master_seed": rep.cfg.seed, "steps": retrain.steps, "dice": res["dice"],
                    "train_seconds": res["train_seconds"], "final_loss": res["train_losses"][-1]})
    return out


def final_network(exp, final: dict, table, n_paths: int, pick: str = "fixed", train_seeds: int = 1,
                  retrain_steps: int | None = None) -> dict:
    """Derive on ``final``'s cells, retrain and time the GA network of ``n_paths`` paths (or, with ``pick="budget"``,
    of the most paths that fit the round's L_ub by the lookup table); its row result. With ``train_seeds`` > 1 or
    ``retrain_steps`` the same network is also retrained with other training seeds (``retrain_replicas``), and
    ``replicas`` / ``replica_dice`` hold their Dice (the mean over training seeds: the architecture's Dice with
    less of the retraining's own noise)."""
    from search.core.genotypes import MultiscaleGenotype

    derivation = exp.derive(final, table)
    n_paths = pick_paths(derivation, final["ub_ms"], n_paths, pick)
    key = f"ga_n{n_paths}"
    g = exp.genotypes(derivation)[key]
    rows = {key: exp.train_network(key, f"GA (N_l={n_paths})", g)}
    exp.measure(rows)
    res = exp.results(rows, {})["rows"][key]
    trained = MultiscaleGenotype.from_dict(res["genotype"])
    doc = {"n_paths": n_paths, "cells": derivation["cells"], "paths": [list(p.kinds) for p in trained.paths],
           "params": res["params"], "genotype": res["genotype"],
           "weights": str(exp.out / "rows" / key / "weights.pt"),
           "dice": res["dice"], "latency": res["latency"], "lut_ms": res["lut_ms"], "meets": res["meets"]}
    if train_seeds > 1 or retrain_steps is not None:
        reps = retrain_replicas(exp, key, f"GA (N_l={n_paths})", g, train_seeds, retrain_steps)
        if retrain_steps is None:  # replica 0 is the row itself
            reps.insert(0, {"train_seed": 0, "master_seed": exp.cfg.seed, "steps": exp.cfg.retrain.steps,
                            "dice": res["dice"], "train_seconds": rows[key]["train_seconds"],
                            "final_loss": rows[key]["train_losses"][-1]})
        doc["replicas"] = reps
        doc["replica_dice"] = replica_summary([r["dice"]["mean"] for r in reps])
    return doc


def replica_summary(dice: list[float]) -> dict:
    """Mean, sample std and spread of one network's Dice over its training seeds."""
    import numpy as np

    d = np.asarray(dice, dtype=float)
    return {"per_seed": [float(x) for x in d], "mean": float(d.mean()),
            "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0, "spread": float(d.max() - d.min())}


def fresh_draws():
    """``bench/fresh_draws.py`` as a module: its fresh phantom seed (``FRESH_SEED``, in no split of any preset or
    shipped model) and its seeded, NaN-dropping bootstrap (``bootstrap_ci``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fresh_draws", Path(__file__).with_name("fresh_draws.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fresh_evaluation(seeds: list[dict], variants: list[str], preset_name: str, n_patients: int) -> dict:
    """Every final network (its retrained weights) scored again on ``n_patients`` fresh phantom patients
    (``fresh_draws().FRESH_SEED``, indices 0..n-1: never in any split), the same patients for every network. Adds
    ``fresh`` to each network (mean Dice, seeded bootstrap 95% CI over patients, per patient) and, for every
    derivation but ``argmax``, ``fresh_vs_argmax`` (the per-patient difference to the same search's argmax network,
    patients where either is NaN left out: mean and 95% CI). Returns the per-derivation summary (Dice per seed,
    spread, target)."""
    import numpy as np
    import torch

    from search.core.genotypes import MultiscaleGenotype
    from search.methods.rtdnas import space
    from search.methods.rtdnas.config import preset
    from search.train.cine_rows import evaluate_cases
    from search.train.clips import render_case
    from search.train.row_networks import build_row_network

    fd = fresh_draws()
    cfg = preset(preset_name)
    data = replace(cfg.data, seed=fd.FRESH_SEED)
    _say(f"fresh patients: rendering {n_patients} (phantom seed {fd.FRESH_SEED})")
    cases = [render_case(data, i).validate() for i in range(n_patients)]

    def ci(values) -> list[float] | None:
        return fd.bootstrap_ci(values, n_boot=fd.BOOTSTRAP, seed=0)

    for s in seeds:
        for v in variants:
            r = s[v]
            g = MultiscaleGenotype.from_dict(r["genotype"])
            row = space.row(f"ga_n{len(g.paths)}", v, len(g.paths))
            net = build_row_network(space.rows_view(cfg, (row,)), row, genotype=g)
            net.load_state_dict(torch.load(r["weights"], map_location="cpu"))
            ev = evaluate_cases(net.eval(), cases, cfg.data)
            per = [p["mean"] for p in ev["per_patient"].values()]
            r["fresh"] = {"patients": n_patients, "phantom_seed": fd.FRESH_SEED, "mean": ev["mean"], "ci95": ci(per),
                          "per_class": ev["per_class"], "per_patient": per}
            _say(f"fresh patients: seed {s['seed']} {v}: Dice {ev['mean']:.3f}")
        for v in variants[1:]:
            diff = np.asarray(s[v]["fresh"]["per_patient"]) - np.asarray(s["argmax"]["fresh"]["per_patient"])
            diff = diff[np.isfinite(diff)]
            s[v]["fresh_vs_argmax"] = {"mean": float(diff.mean()) if diff.size else float("nan"), "ci95": ci(diff),
                                       "patients": int(diff.size)}
    out = {}
    for v in variants:
        dice = [s[v]["fresh"]["mean"] for s in seeds]
        meet = all(s[v]["meets"] for s in seeds)
        out[v] = {"patients": n_patients, "dice": dice, "spread": max(dice) - min(dice),
                  "target_met": bool(meet and max(dice) - min(dice) <= 0.03 and len(seeds) >= 3)}
    return out


def fresh_lines(result: dict, variants: list[str]) -> list[str]:
    """The table of every final network on the fresh patients, and the spread per derivation."""
    n = result["fresh_patients"]
    seed = result["seeds"][0][variants[0]]["fresh"]["phantom_seed"]
    lines = ["", f"## On {n} fresh phantom patients (phantom seed {seed}, in no split)", "",
             "The final networks above (their retrained weights, nothing retrained) scored again on the same "
             f"{n} new patients: mean Dice with a seeded bootstrap 95% interval over patients, and each derivation's "
             "per-patient difference to the same search's argmax network.", "",
             "| derivation | seed | Dice (95% CI) | RV / MYO / LV | minus the argmax network (95% CI) |",
             "|---|---|---|---|---|"]
    for v in variants:
        for s in result["seeds"]:
            f, pc = s[v]["fresh"], s[v]["fresh"]["per_class"]
            d = s[v].get("fresh_vs_argmax")
            lines.append(f"| {v} | {s['seed']} | {f['mean']:.3f} {_interval(f['ci95'])} | "
                         f"{pc['RV']:.3f} / {pc['MYO']:.3f} / {pc['LV']:.3f} | "
                         + ("-" if d is None else f"{d['mean']:+.3f} {_interval(d['ci95'], signed=True)}") + " |")
    lines += ["", "| derivation | Dice per seed, fresh patients | spread | target (spread <= .03, all within) |",
              "|---|---|---|---|"]
    for v in variants:
        t = result["summary"][v]["fresh"]
        lines.append(f"| {v} | {' / '.join(f'{d:.3f}' for d in t['dice'])} | {t['spread']:.3f} | "
                     f"{'met' if t['target_met'] else 'missed'} |")
    return lines + [""]


def _interval(ci: list[float] | None, signed: bool = False) -> str:
    if not ci:
        return "(no interval)"
    return f"({ci[0]:+.3f} to {ci[1]:+.3f})" if signed else f"({ci[0]:.3f}-{ci[1]:.3f})"


def with_search(cfg, args: argparse.Namespace):
    """The preset with the search overrides of the command line (``--search-steps``, ``--arch-lr``, ...)."""
    search = cfg.search
    if args.search_steps is not None:
        search = replace(search, warmup_steps=args.search_steps[0], search_steps=args.search_steps[1])
    overrides = {"arch_lr": args.arch_lr, "arch_weight_decay": args.arch_weight_decay, "sampler": args.sampler,
                 "gdas_tau": None if args.gdas_tau is None else tuple(args.gdas_tau),
                 "latency_loss": args.latency_loss, "free_op_dropout": args.free_op_dropout,
                 "skip_edge_dropout": args.skip_edge_dropout}
    search = replace(search, **{k: v for k, v in overrides.items() if v is not None})
    return replace(cfg, search=search)


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    import torch

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
           "argmax": final_network(exp, final, table, args.paths, args.pick, args.train_seeds, args.retrain_steps)}
    if args.cap is not None:
        cap_cfg = replace(cfg, cell_max_free_ops=args.cap)
        sub = folder / f"cap{args.cap}"
        _link_run_inputs(folder, sub)
        exp_cap = RtdnasExperiment(cap_cfg, sub, msnas_dir=shared, progress=_say)
        exp_cap._check_config()
        try:
            supernet = exp.round_supernet(final)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        cells = space.decode_cells(supernet, args.cap)
        capped = {**final, "cells": {k: c.to_dict() for k, c in cells.items()}}
        doc[f"cap{args.cap}"] = final_network(exp_cap, capped, table, args.paths, args.pick, args.train_seeds,
                                             args.retrain_steps)
    smaller = None
    for k in sorted(set(args.cell_candidates or ())):
        doc[pick_variant(k, args.candidate_paths)] = picked_network(cfg, folder, final, table, args, doc, k, smaller)
        smaller = k
    doc["seconds"] = time.perf_counter() - t0
    doc["search_and_table_seconds"] = search_s
    doc["search_config"] = {k: getattr(cfg.search, k) for k in ("warmup_steps", "search_steps", "arch_lr",
                                                                  "arch_weight_decay", "batch_size", "sampler",
                                                                  "gdas_tau", "latency_loss", "free_op_dropout",
                                                                  "skip_edge_dropout")}
    doc["schedule"] = (f"search {cfg.search.warmup_steps} warm-up + {cfg.search.search_steps} alternating steps "
                       f"(arch lr {cfg.search.arch_lr:g}, arch weight decay {cfg.search.arch_weight_decay:g}"
                       + (f", GDAS tau {cfg.search.gdas_tau[0]:g} -> {cfg.search.gdas_tau[1]:g}"
                          if cfg.search.sampler == "gdas" else "")
                       + (", loss L_a + penalty" if cfg.search.latency_loss == "penalty" else "")
                       + (f", weight-free op dropout {cfg.search.free_op_dropout:g}" if cfg.search.free_op_dropout else "")
                       + (f", skip-edge dropout {cfg.search.skip_edge_dropout:g}" if cfg.search.skip_edge_dropout else "")
                       + ") on "
                       f"{'x'.join(map(str, cfg.search.proxy_clip or ()))} proxy clips, the final network retrained "
                       f"{cfg.retrain.steps} steps of {cfg.retrain.batch_size} clips, timed at "
                       f"{cfg.data.clip_length}x{cfg.data.height}x{cfg.data.width}")
    return doc


def picked_network(cfg, folder: Path, final: dict, table, args: argparse.Namespace, doc: dict, k: int,
                   smaller: int | None = None) -> dict:
    """The same search's cells picked among ``k`` candidates on validation patients (``RtdnasConfig.pick``; folder
    ``seed<s>/pick<k>``, the search not rerun), then its final network. The candidates of a pick among more are the
    same draws plus more (one seeded generator), so with ``smaller`` (a pick among fewer, made before) its trained
    candidates are linked in and not trained again (``_pick`` checks each row's network). With
    ``--retrain-candidates`` every candidate within L_ub is also retrained with the preset's schedule and scored on
    the test patients (rows ``full_c<i>``; a candidate whose network is the argmax or the picked final network
    reuses that row): does the short training rank the candidates as the full one does?"""
    from search.methods.rtdnas.config import PickConfig
    from search.methods.rtdnas.experiment import RtdnasExperiment

    pick_cfg = replace(cfg, pick=PickConfig(candidates=k, train_steps=args.candidate_steps, n_paths=args.paths,
                                            paths=args.candidate_paths))
    sub = folder / pick_variant(k, args.candidate_paths)
    _link_run_inputs(folder, sub)
    if smaller is not None and args.candidate_paths != "both":  # ("both" numbers its drawn pools after its K)
        for row in (folder / pick_variant(smaller, args.candidate_paths) / "rows").glob("pick_c*"):
            _link_tree(row, sub / "rows" / row.name)
    for index, (variant, theirs) in _shared_candidates(k, args.candidate_paths).items():
        if _same_candidate_training(folder / variant, pick_cfg):  # the same network, trained the same way
            _link_tree(folder / variant / "rows" / f"pick_c{theirs}", sub / "rows" / f"pick_c{index}")
    exp = RtdnasExperiment(pick_cfg, sub, progress=_say)
    exp._check_config()
    picked = exp.pick_cells(final, table, folder / "rounds" / f"r{final['round']}" / "supernet.pt")
    out = final_network(exp, picked, table, picked["pick"]["picked_n_paths"], args.pick, args.train_seeds,
                        args.retrain_steps)  # the picked candidate's own network (on a drawn pool: its N_l fits L_ub)
    pick_doc = json.loads((sub / "pick.json").read_text())
    out["pick"] = pick_doc
    if args.retrain_candidates:
        from search.core.genotypes import CellGenotype, PathGenotype
        from search.methods.rtdnas import space

        def ident(r: dict) -> str:
            return json.dumps([r["paths"], r["cells"]], sort_keys=True)

        known = {ident(r): r["dice"]["mean"] for r in (doc["argmax"], out)}
        for c in pick_doc["candidates"]:
            if c["within_ub"] and ident(c) not in known:
                g = space.genotype(pick_cfg, {kk: CellGenotype.from_dict(v) for kk, v in c["cells"].items()},
                                   [PathGenotype(tuple(p)) for p in c["paths"]])
                res = exp.train_network(f"full_c{c['index']}", f"candidate {c['index']}, full training", g)
                known[ident(c)] = res["dice"]["mean"]
            c["test_dice_full"] = known.get(ident(c))
    return out


def _same_candidate_training(folder: Path, pick_cfg) -> bool:
    """Whether the pick in ``folder`` trained its candidates as ``pick_cfg`` does (steps, N_l, the rest of the
    config): only then is its argmax candidate's row the one this pick would train."""
    path = folder / "config.json"
    if not (folder / "rows" / "pick_c0").is_dir() or not path.is_file():
        return False
    from search.train.cine_config import stage_config

    # the restart fields aside: candidates are short proxies, never restarted (RetrainConfig.proxy)
    theirs = stage_config(json.loads(path.read_text()))
    ours = stage_config(json.loads(json.dumps(pick_cfg.to_dict())))
    theirs.get("pick", {}).pop("paths", None)
    ours.get("pick", {}).pop("paths", None)
    return theirs == ours


def _free_ops(cells: dict) -> dict:
    from search.core.op_names import PARAMETER_FREE_OPS

    return {k: sum(op in PARAMETER_FREE_OPS for _, _, op in c["edges"]) for k, c in cells.items()}


def pick_variant(k: int, paths: str = "heaviest") -> str:
    """Name (and folder) of the pick among ``k`` cell sets: ``pick<K>``, ``pick<K>s`` with drawn gene pools, ``pick<K>b``
    with both (``PickConfig.paths``)."""
    return f"pick{k}" + {"heaviest": "", "sampled": "s", "both": "b"}[paths]


PICK_WORDS = {"heaviest": "cells", "sampled": "cells and gene pool",
              "both": "cells, on the heaviest paths or a drawn gene pool,"}
"""What a pick of each ``--candidate-paths`` chooses."""


def _shared_candidates(k: int, paths: str) -> dict[int, tuple[str, int]]:
    """Candidates of the pick among ``k`` (gene pools ``paths``) that another kind of pick trains as the same network:
    ``{index: (that pick's variant, its index)}``. The argmax (0) is the same in all; ``"both"``'s 1..K-1 are
    ``pick<K>``'s and its K..2K-2 are ``pick<K>s``' 1..K-1 (the same cell draws, the same pool draws in order)."""
    if paths == "heaviest":
        return {}
    shared = {0: (pick_variant(k), 0)}
    if paths == "both":
        shared |= {i: (pick_variant(k), i) for i in range(1, k)}
        shared |= {k - 1 + i: (pick_variant(k, "sampled"), i) for i in range(1, k)}
    return shared


def variant_names(cap: int | None, candidates, paths: str = "heaviest") -> list[str]:
    """The derivations of a run: ``argmax``, ``cap<M>`` with ``--cap``, ``pick_variant(K)`` for each K of
    ``--cell-candidates`` (one K or a list)."""
    return ["argmax"] + ([f"cap{cap}"] if cap is not None else []) + [pick_variant(k, paths) for k in _ks(candidates)]


def _ks(candidates) -> list[int]:
    """The K of ``--cell-candidates`` as a sorted list (results of older runs hold one int)."""
    return [candidates] if isinstance(candidates, int) else sorted(set(candidates or ()))


def markdown(result: dict) -> str:
    paths = result.get("candidate_paths", "heaviest")
    ks = _ks(result.get("cell_candidates"))
    variants = variant_names(result["cap"], ks, paths)
    final = (f"GA N_l = {result['paths']}" if result.get("pick", "fixed") == "fixed" else
             f"the GA network of the most paths (N_l <= {result['paths']}) that fits L_ub by the lookup table")
    if paths != "heaviest":
        final += " (a pick's: its picked candidate's network, N_l as many drawn paths as fit)"
    lines = [f"# rtdnas over search seeds ({result['preset']} preset, final network = {final})", "",
             f"Machine: {result['machine']}; torch {result['torch_threads']} thread(s), onnxruntime as the app "
             f"(2 intra-op threads). {result['started']} to {result['finished']} UTC, load average "
             f"{result['loadavg_start']} at the start, {result['loadavg_end']} at the end. Made by "
             f"`python bench/rtdnas_seeds.py {' '.join(result['argv'])}`.", "",
             f"Each seed: its own search, the GA derivation, then the final network ({result['seeds'][0]['schedule']}); "
             "Dice on the same held-out phantom patients for every seed (mean ± std over patients). "
             "`argmax`: the cells as the search derives them (the paper)"
             + ("" if result["cap"] is None else
                f"; `cap{result['cap']}`: the same search's cells with at most {result['cap']} weight-free op(s) per "
                "cell (P-DARTS' cap; the search is not rerun)")
             + "".join(
                f"; `{pick_variant(k, paths)}`: the same search's {PICK_WORDS[paths]} picked among "
                f"{k} cell sets (the argmax and draws from the searched distribution) by the "
                f"Dice of a {result['candidate_steps']}-step training on validation patients (below; the search is "
                "not rerun)" for k in ks) + ".", "",
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
    for v in variants:
        if v.startswith("pick"):
            lines += candidate_lines(result, v)
    if result.get("fresh_patients"):
        lines += fresh_lines(result, variants)
    if any("replicas" in s[v] for v in variants for s in result["seeds"]):
        lines += replica_lines(result, variants)
    return "\n".join(lines)


def candidate_lines(result: dict, v: str) -> list[str]:
    """The candidates of pick variant ``v`` per seed: LUT latency, validation Dice after the short training, and
    (with ``--retrain-candidates``) the test Dice after the full retraining."""
    from search.methods.rtdnas.ga import gene_pool  # torch-free: the table is remade from the JSON alone

    full = any("test_dice_full" in c for s in result["seeds"] for c in s[v]["pick"]["candidates"])
    rule = result["seeds"][0][v]["pick"]["rule"]
    lines = ["", f"## `{v}`: the candidates ({result['candidate_steps']}-step training on the weight patients, Dice on "
             "the architecture patients)", "", f"Picked: {rule}.", "",
             "| seed | candidate | source | gene pool | weight-free ops per cell (ep / ns / ct) | N_l | deepest scale "
             "| LUT ms | validation Dice | measured p95 ms " + ("| test Dice, full retraining " if full else "")
             + "| picked |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if full else "")]
    for s in result["seeds"]:
        pick = s[v]["pick"]
        for c in pick["candidates"]:
            free = _free_ops(c["cells"])
            val = f"{c['val_dice']:.3f}" if "val_dice" in c else "not trained (over L_ub)"
            test = ""
            if full:
                test = f"{c['test_dice_full']:.3f} | " if c.get("test_dice_full") is not None else "- | "
            lines.append(f"| {s['seed']} | {c['index']} | {c['source']} | {gene_pool(c)} | "
                         f"{free.get('ep')} / {free.get('ns')} / {free.get('ct')} | {len(c['paths'])} | "
                         f"{_deepest(c['paths'])} | "
                         f"{c['lut_ms']:.1f} | {val} | {_measured_p95(c)} | {test}"
                         f"{'**yes**' if c['index'] == pick['picked'] else ''} |")
    if full:
        lines += ["", "Rank agreement of the short training with the full retraining (Spearman, per seed): "
                  + "; ".join(f"seed {s['seed']}: {_spearman(s[v]['pick']['candidates'])}" for s in result["seeds"])]
    return lines + [""]


def _measured_p95(candidate: dict) -> str:
    """A candidate's measured p95 (the pick times the best ones in order until one meets the rule), or "-"."""
    p95 = (candidate.get("measured") or {}).get("p95_ms")
    return "-" if p95 is None else f"{p95:.1f}"


def _deepest(paths: list[list[str]]) -> int:
    """The coarsest scale any of the paths reaches (0: they all stay at full resolution)."""
    from search.core.genotypes import PathGenotype

    return max(max(PathGenotype(tuple(p)).scales) for p in paths)


def _spearman(candidates: list[dict]) -> str:
    """Spearman's rank correlation (average ranks for ties) of the validation and full-retraining Dice."""
    from scipy.stats import spearmanr

    pairs = [(c["val_dice"], c["test_dice_full"]) for c in candidates
             if "val_dice" in c and c.get("test_dice_full") is not None]
    if len(pairs) < 3:
        return "n/a (fewer than 3 candidates)"
    val, full = zip(*pairs)
    if len(set(val)) == 1 or len(set(full)) == 1:
        return f"n/a (all equal over {len(pairs)})"
    return f"{float(spearmanr(val, full).statistic):.2f} over {len(pairs)}"


def replica_lines(result: dict, variants: list[str]) -> list[str]:
    """The table of the final networks retrained with several training seeds, and its verdict."""
    steps = {r["steps"] for v in variants for s in result["seeds"] for r in s[v].get("replicas", [])}
    lines = ["", f"## The same final networks over training seeds ({' / '.join(map(str, sorted(steps)))} retraining "
             "steps)", "",
             "Each final network above retrained from scratch again under other training seeds (same genotype, same "
             "patients, same schedule): how much of the spread over search seeds is the retraining's own noise. "
             "Dice per network = mean over its training seeds.", "",
             "| derivation | search seed | steps | Dice per training seed | mean | std (training seeds) | final loss |",
             "|---|---|---|---|---|---|---|"]
    for v in variants:
        for s in result["seeds"]:
            reps = s[v].get("replicas")
            if not reps:
                continue
            rd = s[v]["replica_dice"]
            losses = " / ".join(f"{r['final_loss']:.3f}" for r in reps)
            lines.append(f"| {v} | {s['seed']} | {reps[0]['steps']} | {' / '.join(f'{d:.3f}' for d in rd['per_seed'])} "
                         f"| {rd['mean']:.3f} | {rd['std']:.3f} | "
                         f"{losses} |")
    lines += ["", "| derivation | mean Dice per search seed | spread of the means | mean std over training seeds "
              "| target on the means (spread <= .03, all within) |", "|---|---|---|---|---|"]
    for v in variants:
        t = result["summary"][v].get("over_training_seeds")
        if t:
            lines.append(f"| {v} | {' / '.join(f'{d:.3f}' for d in t['dice'])} | {t['spread']:.3f} | "
                         f"{t['train_seed_std']:.3f} | {'met' if t['target_met'] else 'missed'} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from search.methods.rtdnas.config import PICK_PATHS

    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", choices=("smoke", "default"), default="default")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "rtdnas" / "seeds")
    p.add_argument("--paths", type=int, default=7, help="N_l of the final network (default 7, as shipped)")
    p.add_argument("--pick", choices=("fixed", "budget"), default="fixed",
                   help="fixed: the final network has --paths paths; budget: the most paths (<= --paths) whose GA "
                        "network fits the search's L_ub by the lookup table")
    p.add_argument("--cap", type=int, default=None, metavar="M",
                   help="also derive each search's cells with at most M weight-free ops per cell")
    p.add_argument("--cell-candidates", type=int, nargs="+", default=None, metavar="K",
                   help="also pick each search's cells among K candidates (the argmax and K-1 draws from the searched "
                        "distribution) by a short training's Dice on validation patients (RtdnasConfig.pick); several "
                        "K: one pick each, the larger reusing the smaller's trained candidates")
    p.add_argument("--candidate-steps", type=int, default=None, metavar="N",
                   help="steps of each candidate's short training (default: RtdnasConfig.pick's, 100)")
    p.add_argument("--candidate-paths", choices=PICK_PATHS, default="heaviest",
                   help="gene pool of the drawn candidates: the search's heaviest paths (default), paths drawn from "
                        "its path distribution too (variant pick<K>s), or both (pick<K>b: 2K-1 candidates, those "
                        "pick<K> and pick<K>s trained reused); RtdnasConfig.pick.paths")
    p.add_argument("--retrain-candidates", action="store_true",
                   help="also retrain every candidate with the preset's schedule and score it on the test patients "
                        "(checks the short training's ranking)")
    p.add_argument("--fresh-patients", type=int, default=None, metavar="N",
                   help="also score every final network on N fresh phantom patients (a seed no split uses)")
    p.add_argument("--search-steps", type=int, nargs=2, metavar=("WARMUP", "SEARCH"), default=None,
                   help="override the preset's warm-up and alternating search steps")
    p.add_argument("--arch-lr", type=float, default=None, help="override the preset's architecture learning rate")
    p.add_argument("--arch-weight-decay", type=float, default=None,
                   help="override the preset's architecture weight decay (DARTS' 1e-3)")
    p.add_argument("--sampler", choices=("darts", "gdas"), default=None,
                   help="override the preset's search sampler: darts (every candidate, the paper) or gdas (one "
                        "sampled (input, op) pair per cell node)")
    p.add_argument("--gdas-tau", type=float, nargs=2, metavar=("START", "END"), default=None,
                   help="GDAS temperature, annealed over the architecture steps (default 10 -> 0.1)")
    p.add_argument("--latency-loss", choices=("product", "penalty"), default=None,
                   help="override the architecture loss: product (the paper's L_a * L_t / L_ub + penalty) or "
                        "penalty (L_a + penalty: latency charged only near and past L_ub)")
    p.add_argument("--free-op-dropout", type=float, default=None, metavar="P",
                   help="P-DARTS' dropout on the weight-free candidates' outputs during the search (default 0)")
    p.add_argument("--skip-edge-dropout", type=float, default=None, metavar="P",
                   help="the same dropout on the grid's skip edges (a path step without a cell; default 0)")
    p.add_argument("--train-seeds", type=int, default=1, metavar="K",
                   help="also retrain every final network under K training seeds in all (the row itself is the "
                        "first): separates the retraining's noise from the search seed's effect")
    p.add_argument("--retrain-steps", type=int, default=None, metavar="N",
                   help="retrain the training-seed replicas (all K of them) for N steps instead of the preset's")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    args = p.parse_args(argv)
    if args.cap is not None and args.cap < 0:
        p.error("--cap must be >= 0")
    if args.cell_candidates is not None and min(args.cell_candidates) < 2:
        p.error("--cell-candidates must be >= 2 (1 is the argmax alone)")
    if args.fresh_patients is not None and args.fresh_patients < 2:
        p.error("--fresh-patients must be >= 2 (an interval needs patients)")
    if args.candidate_steps is not None and (args.candidate_steps < 1 or args.cell_candidates is None):
        p.error("--candidate-steps must be >= 1 and needs --cell-candidates")
    if args.cell_candidates is not None and args.candidate_steps is None:
        from search.methods.rtdnas.config import PickConfig

        args.candidate_steps = PickConfig.train_steps
    if args.candidate_paths != "heaviest" and args.cell_candidates is None:
        p.error("--candidate-paths needs --cell-candidates")
    if args.retrain_candidates and args.cell_candidates is None:
        p.error("--retrain-candidates needs --cell-candidates")
    if args.train_seeds < 1:
        p.error("--train-seeds must be >= 1")
    if args.retrain_steps is not None and args.retrain_steps < 1:
        p.error("--retrain-steps must be >= 1")
    if args.search_steps is not None and min(args.search_steps) < 0:
        p.error("--search-steps must be >= 0")
    from search.methods.rtdnas.config import preset

    try:  # the search options' own checks (dropout rate, temperatures), as a usage error
        with_search(preset(args.preset), args)
    except ValueError as e:
        p.error(str(e))

    from app.engine.benchmark import load_average
    from app.engine.replay import machine_description

    started, load_start = time.strftime("%Y-%m-%d %H:%M"), load_average()
    seeds = []
    for seed in args.seeds:
        _say(f"seed {seed}")
        seeds.append(run_seed(seed, args))
    import torch

    variants = variant_names(args.cap, args.cell_candidates, args.candidate_paths)
    summary = {}
    for v in variants:
        dice = [s[v]["dice"]["mean"] for s in seeds]
        meet = all(s[v]["meets"] for s in seeds)
        spread = max(dice) - min(dice)
        summary[v] = {"dice": dice, "spread": spread, "all_meet": meet,
                      "target_met": bool(meet and spread <= 0.03 and len(seeds) >= 3)}
        if all("replica_dice" in s[v] for s in seeds):
            means = [s[v]["replica_dice"]["mean"] for s in seeds]
            summary[v]["over_training_seeds"] = {
                "dice": means, "spread": max(means) - min(means),
                "train_seed_std": float(sum(s[v]["replica_dice"]["std"] for s in seeds) / len(seeds)),
                "target_met": bool(meet and max(means) - min(means) <= 0.03 and len(seeds) >= 3)}
    if args.fresh_patients:
        for v, t in fresh_evaluation(seeds, variants, args.preset, args.fresh_patients).items():
            summary[v]["fresh"] = t
    result = {"argv": sys.argv[1:] if argv is None else argv, "machine": machine_description(),
              "torch_threads": torch.get_num_threads(), "started": started, "finished": time.strftime("%Y-%m-%d %H:%M"),
              "loadavg_start": load_start, "loadavg_end": load_average(), "preset": args.preset, "paths": args.paths, "pick": args.pick,
              "fresh_patients": args.fresh_patients,
              "cap": args.cap, "cell_candidates": args.cell_candidates, "candidate_steps": args.candidate_steps,
              "candidate_paths": args.candidate_paths,
              "train_seeds": args.train_seeds, "retrain_steps": args.retrain_steps,
              "seeds": seeds, "summary": summary}
    for v, s in summary.items():
        _say(f"{v}: Dice {' / '.join(f'{d:.3f}' for d in s['dice'])}, spread {s['spread']:.3f}, "
             f"all within budget {s['all_meet']}, target {'met' if s['target_met'] else 'missed'}")
        if "over_training_seeds" in s:
            t = s["over_training_seeds"]
            _say(f"{v} over training seeds: mean Dice {' / '.join(f'{d:.3f}' for d in t['dice'])}, spread "
                 f"{t['spread']:.3f}, training-seed std {t['train_seed_std']:.3f}")
        if "fresh" in s:
            t = s["fresh"]
            _say(f"{v} on {t['patients']} fresh patients: Dice {' / '.join(f'{d:.3f}' for d in t['dice'])}, spread "
                 f"{t['spread']:.3f}, target {'met' if t['target_met'] else 'missed'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float))
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
