"""A small registry of CLI subcommands shared by ``app`` and ``search``.

Each subcommand lives in its own thin module that defines ``configure(parser)`` (add arguments,
cheap imports only) and ``run(args) -> int`` (does the work, heavy imports inside). A subcommand
whose module is not built yet stays listed in ``--help`` and, when called, says so and exits 2.
No fake output, ever.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

NOT_BUILT_EXIT = 2


@dataclass(frozen=True)
class Subcommand:
    """One entry of a CLI: its name, the module that implements it, and a one-line help."""

    name: str
    module: str
    help: str


def _load(module: str):
    """Import a subcommand module, or return None when it does not exist yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            return None
        raise


def _not_built(name: str, prog: str) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        print(f"{prog} {name}: not built yet in this version.", file=sys.stderr)
        return NOT_BUILT_EXIT

    return run


def build_parser(prog: str, description: str, commands: Sequence[Subcommand]) -> argparse.ArgumentParser:
    """Build an argparse parser with one sub-parser per registered subcommand."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in commands:
        module = _load(cmd.module)
        help_text = cmd.help if module is not None else f"{cmd.help} [not built yet]"
        p = sub.add_parser(cmd.name, help=help_text, description=help_text)
        if module is None:
            p.set_defaults(_run=_not_built(cmd.name, prog), _accepts_any=True)
        else:
            module.configure(p)
            p.set_defaults(_run=module.run)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str], default: str | None) -> int:
    """Parse ``argv`` and run the chosen subcommand (``default`` when none is given)."""
    argv = list(argv)
    if default is not None and (not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help"))):
        argv = [default, *argv]  # `python -m app --source X` means `python -m app view --source X`
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "_accepts_any", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return NOT_BUILT_EXIT
    return int(args._run(args) or 0)
