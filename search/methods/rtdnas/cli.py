"""``python -m search rtdnas``: the RT-DNAS constrained search, GA path selection, Tables 1-2 and Fig. 2.

The paper: Lu et al., MICCAI 2022, arXiv:2206.04682 (full reference in ``docs/references.md``).

Resumable: run the same command again after an interruption and it continues where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PRESET_HELP = "smoke: < 1 min, tiny; default: a 2-core CPU in ~30 min; paper: the paper's schedule (GPU)"


def configure(parser: argparse.ArgumentParser) -> None:
    from search.methods.common_cli import add_method_arguments, add_pick_arguments

    add_method_arguments(parser, method="rtdnas", preset_help=PRESET_HELP,
                         device_help="torch device; rtdnas searches and trains on the CPU only")
    parser.add_argument("--msnas-dir", type=Path, default=None,
                        help="msnas-hw run folder of the same preset (LUT seed, Table 2 baselines; "
                             "default runs/msnas-hw/<preset>)")
    parser.add_argument("--no-cloud", dest="cloud", action="store_false",
                        help="leave out Fig. 2's cloud of random networks (30 timed, the slowest 4 within the budget "
                             "retrained fully: ~8 min of the default preset); the searched rows and the shipped model "
                             "are the same either way, the report says the cloud was left out")
    add_pick_arguments(parser, candidates_help="pick the final cells among K candidates: the search's argmax and K-1 "
                       "draws from its architecture distribution, each trained briefly on the weight patients and "
                       "scored on the architecture patients (default 1: the argmax, as the paper)",
                       paths_help="gene pool of the drawn candidates: the search's heaviest paths (default), paths "
                       "drawn from its path distribution too, each network with as many of them (up to N_l) as fit "
                       "L_ub (sampled), or every cell draw on both (2K-1 candidates)")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from search import distributed
    from search.methods.common_cli import pick_from_args, require_cpu, run_places, with_runtime
    from search.methods.rtdnas.config import preset
    from search.methods.rtdnas.experiment import RtdnasExperiment

    require_cpu(args, "rtdnas")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    distributed.init_from_env()  # under torchrun: join the process group (rank 0 alone logs and writes)
    cfg = with_runtime(preset(args.preset, seed=args.seed), args)
    pick, error = pick_from_args(args, "rtdnas")
    if error:
        print(error, file=sys.stderr)
        return 2
    if pick is not None:
        from dataclasses import replace

        cfg = replace(cfg, pick=pick)
    from search.data import CINE_ACDC
    from search.methods.common_cli import with_data

    cfg = with_data(cfg, args, CINE_ACDC, "rtdnas")  # --data: checked here, read by search.train.clips
    places = run_places(args, method="rtdnas", docs_name="rtdnas")
    out, models_dir, docs_dir = places.out, places.models_dir, places.docs_dir
    full = args.preset != "smoke"
    from search.methods.common_cli import run_name  # msnas-hw's run on the same --data

    msnas_dir = args.msnas_dir or (REPO / "runs" / "msnas-hw" / run_name(args) if full else None)

    def say(msg: str) -> None:
        if distributed.is_main():
            print(f"[rtdnas] {msg}", flush=True)

    say(f"preset {cfg.preset}, seed {cfg.seed}, run folder {out}")
    try:
        RtdnasExperiment(cfg, out, docs_dir=docs_dir, msnas_dir=msnas_dir, models_dir=models_dir, progress=say,
                         cloud=getattr(args, "cloud", True)).run()
    except (ValueError, FileNotFoundError) as exc:
        print(f"rtdnas: {exc}", file=sys.stderr)
        return 1
    return 0
