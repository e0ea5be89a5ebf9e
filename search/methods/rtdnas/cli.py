"""``python -m search rtdnas``: seed 002's constrained search, GA path selection, Tables 1-2 and Fig. 2.

Resumable: run the same command again after an interruption and it continues where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("smoke", "default", "paper"), default="default",
                        help="smoke: < 1 min, tiny; default: a 2-core CPU in ~30 min; paper: seed 002's schedule (GPU)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/rtdnas/<preset>)")
    parser.add_argument("--seed", type=int, default=None, help="master seed (default: the preset's)")
    parser.add_argument("--msnas-dir", type=Path, default=None,
                        help="msnas-hw run folder of the same preset (LUT seed, Table 2 baselines; "
                             "default runs/msnas-hw/<preset>)")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="where the winner goes if it beats msnas-hw (default: models/, <out>/models for smoke)")
    parser.add_argument("--docs-dir", type=Path, default=None, help="report copy (default docs/rtdnas; none for smoke)")
    parser.add_argument("--no-ship", action="store_true", help="do not export a model")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from search import distributed
    from search.methods.rtdnas.config import preset
    from search.methods.rtdnas.experiment import RtdnasExperiment

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    distributed.init_from_env()  # under torchrun: join the process group (rank 0 alone logs and writes)
    cfg = preset(args.preset, seed=args.seed)
    out = args.out or REPO / "runs" / "rtdnas" / args.preset
    full = args.preset != "smoke"
    msnas_dir = args.msnas_dir or (REPO / "runs" / "msnas-hw" / args.preset if full else None)
    models_dir = None if args.no_ship else (args.models_dir or (REPO / "models" if full else out / "models"))
    docs_dir = args.docs_dir or (REPO / "docs" / "rtdnas" if full else None)

    def say(msg: str) -> None:
        if distributed.is_main():
            print(f"[rtdnas] {msg}", flush=True)

    say(f"preset {cfg.preset}, seed {cfg.seed}, run folder {out}")
    try:
        RtdnasExperiment(cfg, out, docs_dir=docs_dir, msnas_dir=msnas_dir, models_dir=models_dir, progress=say).run()
    except (ValueError, FileNotFoundError) as exc:
        print(f"rtdnas: {exc}", file=sys.stderr)
        return 1
    return 0
