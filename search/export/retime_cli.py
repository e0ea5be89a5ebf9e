"""``python -m search retime``: re-time a models folder's cards on this machine, together, when it is quiet.

    python -m search retime                       # every card in models/
    python -m search retime --ids cine-rtdnas-ga-n7 --rounds 10
    python -m search retime --models-dir runs/all/smoke/models --max-load 4

Prints the previous and new p50 / p95 of each card and writes the new figures into the cards
(``search.export.retime``); refuses while the 1-minute load average is above ``--max-load``.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from search.export.retime import MAX_LOAD_PER_CORE

    parser.add_argument("--models-dir", default=None, help="the folder of cards (default: the app's models/)")
    parser.add_argument("--ids", nargs="+", default=None, metavar="ID", help="only these cards (default: all)")
    parser.add_argument("--rounds", type=int, default=6, help="blocks per model (default 6)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per block (default 10)")
    parser.add_argument("--warmup", type=int, default=5, help="discarded runs per block (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the app's)")
    parser.add_argument("--max-load", type=float, default=None,
                        help=f"refuse above this 1-minute load average (default {MAX_LOAD_PER_CORE} x logical cores)")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from app.cards import ModelCardError, default_models_dir
    from search.export.retime import RetimeRefused, retime_cards, table

    if min(args.rounds, args.runs) < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        print("retime: --rounds, --runs and --threads must be at least 1, --warmup at least 0", file=sys.stderr)
        return 2
    folder = Path(args.models_dir) if args.models_dir else default_models_dir()
    try:
        rows = retime_cards(folder, ids=args.ids, rounds=args.rounds, runs=args.runs, warmup=args.warmup,
                            threads=args.threads, max_load=args.max_load)
    except (RetimeRefused, ModelCardError) as exc:
        print(f"retime: {exc}", file=sys.stderr)
        return 1
    print(table(rows))
    return 0
