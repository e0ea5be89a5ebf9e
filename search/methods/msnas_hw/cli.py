"""``python -m search msnas-hw``: the 3D multi-scale hardware-aware search, Table 2 and a shipped model.

The paper: Zeng et al., ICCAD 2020, arXiv:2008.07071 (full reference in ``docs/references.md``).

Resumable: run the same command again after an interruption and it continues where it stopped.
``--rows KEY ...`` trains only those rows (and their searches), ``--retrain-steps N`` retrains longer:
e.g. the handcrafted baselines to convergence, in their own ``--out``.
"""

from __future__ import annotations

import argparse

PRESET_HELP = "smoke: < 1 min, tiny; default: a quiet 2-core CPU in ~1 h; paper: the paper's schedule (GPU)"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 1")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    from search.methods.common_cli import add_method_arguments, add_pick_arguments
    from search.methods.msnas_hw.config import paper_rows

    add_method_arguments(parser, method="msnas-hw", preset_help=PRESET_HELP,
                         device_help="torch device; msnas-hw searches and trains on the CPU only")
    parser.add_argument("--rows", nargs="+", metavar="KEY", default=None,
                        help="train and evaluate only these Table 2 rows (" + ", ".join(r.key for r in paper_rows())
                        + ", and ours_n1_pick with --cell-candidates) and the searches they decode from (none for "
                        "the U-nets), and write <out>/rows.md and "
                        "rows.json (per-class Dice, schedule, learning curve); Table 2's latency, the report and "
                        "shipping are not run (they need every row)")
    parser.add_argument("--retrain-steps", dest="retrain_steps", type=_positive_int, default=None, metavar="N",
                        help="optimiser steps per retrained row (default: the preset's); part of the run's "
                        "configuration, so give it its own --out")
    add_pick_arguments(parser, candidates_help="add the row 'ours (n=1, picked)' (ours_n1_pick): the best of K "
                       "candidates, ours n=1 and K-1 cell sets drawn from its search's distribution, each within "
                       "0.3x MS-NAS n=4's lookup-table latency trained briefly on the weight patients and scored on "
                       "the architecture patients (on all training patients and the validation ones when the split "
                       "has them, as the paper preset's); never on the test patients (default 1: no such row, the "
                       "paper's table)",
                       paths_help="path of the drawn candidates: ours n=1's top path (default), a path drawn from "
                       "the search's path distribution (sampled), or every cell draw on both (2K-1 candidates)")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from search import distributed
    from search.methods.common_cli import pick_from_args, require_cpu, run_places, with_runtime
    from search.methods.msnas_hw.config import preset
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    require_cpu(args, "msnas-hw")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    distributed.init_from_env()  # under torchrun: join the process group (rank 0 alone logs and writes)
    cfg = with_runtime(preset(args.preset, seed=args.seed), args)
    pick, error = pick_from_args(args, "msnas-hw")
    if error:
        print(error, file=sys.stderr)
        return 2
    if pick is not None:
        cfg = cfg.with_pick(pick)
    if args.retrain_steps is not None:
        cfg = cfg.with_retrain_steps(args.retrain_steps)
    if args.rows:
        try:
            cfg.rows_named(args.rows)  # before any data: one line naming the valid keys
        except ValueError as exc:
            print(f"msnas-hw: --rows: {exc}", file=sys.stderr)
            return 2
    from search.data import CINE_ACDC
    from search.methods.common_cli import with_data

    cfg = with_data(cfg, args, CINE_ACDC, "msnas-hw")  # --data: checked here, read by search.train.clips
    places = run_places(args, method="msnas-hw", docs_name="msnas")
    out, models_dir, docs_dir = places.out, places.models_dir, places.docs_dir

    def say(msg: str) -> None:
        if distributed.is_main():
            print(f"[msnas-hw] {msg}", flush=True)

    say(f"preset {cfg.preset}, seed {cfg.seed}, run folder {out}")
    try:
        experiment = MsnasHwExperiment(cfg, out, docs_dir=docs_dir, models_dir=models_dir, progress=say)
        if args.rows:
            experiment.run_rows(args.rows)
        else:
            experiment.run()
    except (ValueError, FileNotFoundError) as exc:
        print(f"msnas-hw: {exc}", file=sys.stderr)
        return 1
    return 0
