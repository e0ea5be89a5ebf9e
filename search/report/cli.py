"""``python -m search report``: the three papers' tables beside ours, and the plots, from stored runs.

Reads what the methods stored (``runs/<method>/<preset>/``; segqc-hw also from its ``docs/segqc``
copy) and the model cards in ``models/``; trains and measures nothing. Writes ``docs/results.md``
and its own PNGs in ``docs/results/`` (figures the methods' ``docs/<method>`` folders hold are
linked). A method without stored results is named, with the command that produces them.
"""

from __future__ import annotations

import argparse

METHODS = ("segqc-hw", "msnas-hw", "rtdnas")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("smoke", "default", "paper"), default="default",
                        help="which runs to report (runs/<method>/<preset>; default: default)")
    parser.add_argument("--runs", default=None, help="folder holding the runs (default: runs/ of the repository)")
    parser.add_argument("--out", default=None,
                        help="Markdown file to write (default: docs/results.md); PNGs go beside it in a folder "
                             "of the same name (docs/results/)")
    parser.add_argument("--models", default=None, help="models folder to summarise (default: the app's models/)")
    parser.add_argument("--run", action="append", default=[], metavar="METHOD=FOLDER",
                        help=f"read METHOD's results from FOLDER instead of <runs>/METHOD/<preset> "
                             f"(METHOD one of {', '.join(METHODS)}; repeatable)")


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["msnas-hw=runs/x"]`` -> ``{"msnas-hw": "runs/x"}``.

    Raises:
        ValueError: not ``METHOD=FOLDER`` or an unknown method.
    """
    out = {}
    for item in items:
        method, sep, folder = item.partition("=")
        if not sep or not folder or method not in METHODS:
            raise ValueError(f"--run {item!r}: expected METHOD=FOLDER with METHOD one of {', '.join(METHODS)}")
        out[method] = folder
    return out


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from app.cards import default_models_dir
    from search.report.build import build_report
    from search.report.sections import REPO

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        overrides = {m: Path(f) for m, f in parse_overrides(args.run).items()}
    except ValueError as exc:
        print(f"search report: {exc}", file=sys.stderr)
        return 2
    runs = Path(args.runs) if args.runs else REPO / "runs"
    out = Path(args.out) if args.out else REPO / "docs" / "results.md"
    models = Path(args.models) if args.models else default_models_dir()
    command = "python -m search report" + ("" if args.preset == "default" else f" --preset {args.preset}")
    report = build_report(args.preset, runs, out, models, overrides=overrides, docs=REPO / "docs", command=command)
    print(f"report: {report.path}")
    for line in report.status:
        print(f"  {line}")
    return 1 if report.unreadable else 0
