"""``python -m search cine-skeleton``: search a per-frame 2D U-net skeleton for cine, retrain it, ship it."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", help="smoke | default (default: default)")
    parser.add_argument("--seed", type=int, help="split / supernet / search seed (default 0)")
    parser.add_argument("--lambda", dest="relative_lambda", type=float, metavar="L",
                        help="weight of the latency term, relative to the U-net 2D baseline's predicted latency "
                             "(default: the preset's)")
    parser.add_argument("--blocks", nargs="+", metavar="TOKEN",
                        help="candidate block tokens shared by every level (default: the preset's, c2: the widths of "
                             "U-net's own block; c2 c1 also offers one conv per block)")
    parser.add_argument("--search-steps", type=int, metavar="N",
                        help="alternating weight / architecture steps after the warm-up (default: the preset's, 400)")
    parser.add_argument("--search-only", action="store_true",
                        help="stop after the search (report.json with the derived network and its verdict; no "
                             "retraining, nothing exported)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run folder, resumable (default: runs/cine-skeleton/<preset>-s<seed>, with --data "
                             "<preset>-s<seed>-<kind>)")
    parser.add_argument("--models-dir", type=Path, metavar="DIR",
                        help="where the card is written (default: models/; with --data, <out>/models)")
    from search.methods.common_cli import add_data_argument

    add_data_argument(parser)
    parser.add_argument("--model-id", help="the shipped card's id (default: cine-skeleton-hw)")
    parser.add_argument("--no-ship", action="store_true", help="search and retrain only; export nothing")
    from search.train import precision

    precision.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import sys

    from search.methods.cine_skeleton.config import preset
    from search.methods.cine_skeleton.run import OtherSearchError
    from search.methods.cine_skeleton.run import run as run_search
    from search.methods.common_cli import data_spec

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from search.train import precision

    precision.use_args(args, args.preset)
    try:
        if args.search_steps is not None and args.search_steps < 1:
            raise ValueError(f"--search-steps must be at least 1, got {args.search_steps}")
        cfg = preset(args.preset, seed=args.seed, relative_lambda=args.relative_lambda, model_id=args.model_id,
                     blocks=tuple(args.blocks) if args.blocks else None, search_steps=args.search_steps)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = data_spec(args)
    if not spec.is_phantom:
        from app.data.case import DataError
        from search.data import CINE_ACDC, check_need, open_dataset

        try:
            check_need(open_dataset(spec), CINE_ACDC, "cine-skeleton")
        except DataError as exc:
            print(f"error: cine-skeleton: --data {spec.kind}: {exc}", file=sys.stderr)
            return 2
    out = args.out or Path("runs") / "cine-skeleton" / (f"{cfg.preset}-s{cfg.seed}"
                                                        + ("" if spec.is_phantom else f"-{spec.kind}"))
    # a dataset's model never replaces the shipped one unless asked: into the run folder by default
    models_dir = args.models_dir or (None if spec.is_phantom else out / "models")
    try:
        report = run_search(cfg, out, models_dir=models_dir, ship=not args.no_ship, search_only=args.search_only,
                            data=None if spec.is_phantom else spec)
    except OtherSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    found = report["search"]
    print(json.dumps({"genotype": found["genotype"], "converged": found["convergence"].get("converged"),
                      "predicted_ms": found["predicted_ms"], "shipped": report.get("shipped"),
                      "card": report.get("card")}, default=float))
    print(f"report   {out / 'report.json'}")
    return 0
