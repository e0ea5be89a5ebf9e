"""A small registry of CLI subcommands shared by ``app`` and ``search``.

Each subcommand lives in its own thin module that defines ``configure(parser)`` (add arguments,
cheap imports only) and ``run(args) -> int`` (does the work, heavy imports inside). Every module is
imported when the parser is built, so a missing or broken one is an import error, never hidden.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Sequence

USAGE_EXIT = 2  # argparse's own exit status for a bad command line


@dataclass(frozen=True)
class Subcommand:
    """One entry of a CLI: its name, the module that implements it, and a one-line help."""

    name: str
    module: str
    help: str


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``prog: error: ...``), without the usage block."""

    def error(self, message: str):  # argparse's hook; never returns
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str, description: str, commands: Sequence[Subcommand]) -> argparse.ArgumentParser:
    """Build an argparse parser with one sub-parser per registered subcommand.

    Raises:
        ImportError: A subcommand's module is missing or fails to import.
    """
    parser = OneLineParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in commands:
        module = importlib.import_module(cmd.module)
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str], default: str | None) -> int:
    """Parse ``argv`` and run the chosen subcommand (``default`` when none is given)."""
    argv = list(argv)
    if default is not None and (not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help"))):
        argv = [default, *argv]  # `python -m app --source X` means `python -m app view --source X`
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return USAGE_EXIT
    return int(args._run(args) or 0)
