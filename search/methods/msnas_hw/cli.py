"""``python -m search msnas-hw``: the 3D multi-scale hardware-aware search of seed 001, Table 2 and a shipped model.

Resumable: run the same command again after an interruption and it continues where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("smoke", "default", "paper"), default="default",
                        help="smoke: < 1 min, tiny; default: a quiet 2-core CPU in ~1 h; paper: seed 001's schedule (GPU)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/msnas-hw/<preset>)")
    parser.add_argument("--seed", type=int, default=None, help="master seed (default: the preset's)")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="where to ship the chosen model (default: models/ for default and paper, <out>/models for smoke)")
    parser.add_argument("--docs-dir", type=Path, default=None,
                        help="where to copy the report (default: docs/msnas for default and paper, none for smoke)")
    parser.add_argument("--no-ship", action="store_true", help="do not export a model")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from search import distributed
    from search.methods.msnas_hw.config import preset
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    distributed.init_from_env()  # under torchrun: join the process group (rank 0 alone logs and writes)
    cfg = preset(args.preset, seed=args.seed)
    out = args.out or REPO / "runs" / "msnas-hw" / args.preset
    full = args.preset != "smoke"
    models_dir = None if args.no_ship else (args.models_dir or (REPO / "models" if full else out / "models"))
    docs_dir = args.docs_dir or (REPO / "docs" / "msnas" if full else None)

    def say(msg: str) -> None:
        if distributed.is_main():
            print(f"[msnas-hw] {msg}", flush=True)

    say(f"preset {cfg.preset}, seed {cfg.seed}, run folder {out}")
    try:
        MsnasHwExperiment(cfg, out, docs_dir=docs_dir, models_dir=models_dir, progress=say).run()
    except (ValueError, FileNotFoundError) as exc:
        print(f"msnas-hw: {exc}", file=sys.stderr)
        return 1
    return 0
