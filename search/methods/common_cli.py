"""The flags every method command takes, and where they point by default.

``python -m search segqc-hw | msnas-hw | rtdnas`` all take::

    --preset {smoke,default,paper}  --out DIR  --seed N  --models-dir DIR  --docs-dir DIR
    --no-ship  --device DEVICE  --threads N  --data SPEC

Defaults: ``--out runs/<method>/<preset>``; ``--models-dir models/`` (``<out>/models`` for the smoke
preset); ``--docs-dir docs/<docs name>`` (none for smoke); ``--data phantom``. With a dataset
(``--data camus:DIR``, see ``search.data``) the defaults keep the shipped models and docs untouched:
``--out runs/<method>/<preset>-<kind>``, models into ``<out>/models``, no docs copy; the spec goes into
the method's config (``DataConfig.source``), so its hash changes and a change of data reruns the
stages. Older spellings still work but are hidden
from ``--help`` and print a deprecation note: ``--models`` (``--models-dir``), ``--docs``
(``--docs-dir``), ``--no-export`` (``--no-ship``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRESETS = ("smoke", "default", "paper")

#: Old spelling -> the flag that replaced it.
DEPRECATED = {"--models": "--models-dir", "--docs": "--docs-dir", "--no-export": "--no-ship"}


class _Deprecated(argparse.Action):
    """Stores like the new flag and says once on stderr that the old spelling is deprecated."""

    def __init__(self, option_strings, dest, *, new: str, flag: bool = False, **kwargs):
        self.new, self.flag = new, flag
        super().__init__(option_strings, dest, nargs=0 if flag else None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.flag else Path(values))


# ``--precision`` when not given (search.train.precision): the searches' supernets and derived cells (many small
# operations) trained slower under bf16 autocast than in fp32 in the chain on an AMX Xeon (segqc-hw: searches
# 3.9 vs 3.4 min, retrains 48 vs 41 s per 13 epochs; bench/precision_bench.py: the rtdnas clip net 1.02x), so
# these commands keep fp32 unless told; the plain-convolution trainings (baselines, cine QC, cine skeleton,
# fine-tuning) default to auto.
PRECISION_DEFAULT = {"segqc-hw": "fp32", "msnas-hw": "fp32", "rtdnas": "fp32"}


def add_method_arguments(parser: argparse.ArgumentParser, *, method: str, preset_help: str,
                         device_help: str = "torch device for searching and training (cpu, cuda)") -> None:
    """Add the common method flags (and their hidden deprecated spellings) to ``parser``.

    Args:
        parser: The subcommand's parser.
        method: Command name (``"msnas-hw"``), used in the help of ``--out``.
        preset_help: What each preset does.
        device_help: What ``--device`` moves (methods differ in what runs where).
    """
    parser.add_argument("--preset", choices=PRESETS, default="default", help=preset_help)
    parser.add_argument("--out", type=Path, default=None, help=f"run folder (default runs/{method}/<preset>)")
    parser.add_argument("--seed", type=int, default=None, help="master seed (default: the preset's)")
    parser.add_argument("--models-dir", dest="models_dir", type=Path, default=None,
                        help="where the shipped model goes (default: models/; <out>/models for smoke)")
    parser.add_argument("--docs-dir", dest="docs_dir", type=Path, default=None,
                        help="where the report is copied (default: docs/<method>; none for smoke)")
    parser.add_argument("--no-ship", dest="no_ship", action="store_true", help="do not export a model")
    parser.add_argument("--device", default="cpu", help=f"{device_help} (default cpu)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch intra-op threads for searching and training (default: the preset's; the default "
                             "preset uses 1, for a 2-core machine shared with other jobs; on a machine doing nothing "
                             "else, the cores it has)")
    from search.train import precision

    precision.add_argument(parser, default=PRECISION_DEFAULT.get(method, "auto"),
                           why=", measured: its cell-based networks train no faster in bf16" if
                           PRECISION_DEFAULT.get(method) == "fp32" else "")
    add_data_argument(parser)
    parser.add_argument("--models", dest="models_dir", action=_Deprecated, new="--models-dir", help=argparse.SUPPRESS)
    parser.add_argument("--docs", dest="docs_dir", action=_Deprecated, new="--docs-dir", help=argparse.SUPPRESS)
    parser.add_argument("--no-export", dest="no_ship", action=_Deprecated, new="--no-ship", flag=True,
                        help=argparse.SUPPRESS)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def with_runtime(cfg, args: argparse.Namespace):
    """The command's runtime settings: ``cfg`` with ``threads`` (torch intra-op threads for training) from
    ``--threads`` when given, and this process training in ``--precision`` from here on
    (``search.train.precision``; when the flag is absent: auto, fp32 for the smoke preset)."""
    from dataclasses import replace

    from search.train import precision

    precision.use_args(args, getattr(cfg, "preset", getattr(args, "preset", None)))
    threads = getattr(args, "threads", None)
    return cfg if threads is None else replace(cfg, threads=threads)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data SPEC`` (``phantom`` or ``KIND:DIR``), parsed into a ``search.data.DataSpec``."""
    from search.data import SPEC_HELP, argparse_data_spec, parse_data_spec

    parser.add_argument("--data", type=argparse_data_spec, default=parse_data_spec("phantom"), metavar="SPEC",
                        help=SPEC_HELP)


def data_spec(args: argparse.Namespace):
    """The parsed ``--data`` of ``args`` (the phantom when the flag is absent)."""
    from search.data import parse_data_spec

    spec = getattr(args, "data", None)
    return parse_data_spec(spec) if spec is None or isinstance(spec, str) else spec


def with_data(cfg, args: argparse.Namespace, need, method: str):
    """``cfg`` with ``data.source`` set from ``--data``, after checking the dataset gives what ``method``
    needs (``need``: ``search.data.ECHO_MYOCARDIUM`` / ``CINE_ACDC``). The phantom returns ``cfg`` as is.

    Raises:
        SystemExit: one line naming the method, the folder and what is missing.
    """
    from dataclasses import replace

    from app.data.case import DataError
    from search.data import check_need, open_dataset

    spec = data_spec(args)
    if spec.is_phantom:
        return cfg
    try:
        check_need(open_dataset(spec), need, method)
    except DataError as exc:
        raise SystemExit(f"{method}: --data {spec.kind}: {exc}") from None
    return replace(cfg, data=replace(cfg.data, source=spec.text))


def run_name(args: argparse.Namespace) -> str:
    """The default run folder's name: ``<preset>``, or ``<preset>-<kind>`` with a ``--data`` dataset."""
    spec = data_spec(args)
    return args.preset if spec.is_phantom else f"{args.preset}-{spec.kind}"


@dataclass(frozen=True)
class RunPlaces:
    """Where a method run reads and writes.

    Attributes:
        out: The run folder.
        models_dir: Where the shipped model goes (None: ``--no-ship``).
        docs_dir: Where the report is copied (None: not copied).
    """

    out: Path
    models_dir: Path | None
    docs_dir: Path | None


def frame_size_type(multiple: int):
    """An argparse type for ``HxW`` (``"128x112"`` -> ``(128, 112)``), both sides positive multiples of
    ``multiple`` (the number of 2x downsamplings the networks make, as a power of two)."""

    def parse(text: str) -> tuple[int, int]:
        try:
            h, w = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"size {text!r}: use HxW, e.g. 128x112") from None
        if h <= 0 or w <= 0 or h % multiple or w % multiple:
            raise argparse.ArgumentTypeError(f"size {text!r}: both sides must be positive multiples of {multiple}")
        return h, w

    return parse


def run_places(args: argparse.Namespace, *, method: str, docs_name: str, root: Path = REPO) -> RunPlaces:
    """The run folder, models folder and docs folder of parsed common flags, defaults applied.

    Args:
        args: Parsed flags (``add_method_arguments``).
        method: Command name; the default run folder is ``runs/<method>/<preset>`` (with a dataset,
            ``runs/<method>/<preset>-<kind>``, models into it and no docs copy).
        docs_name: Folder under ``docs/`` the report goes to for the default and paper presets.
        root: The repository root the defaults are under.
    """
    spec = data_spec(args)
    # absolute, so a relative --out (--models-dir, --docs-dir) means the same folder to the stage harness
    # (which joins relative outputs onto the run folder) as to the method that builds paths under it
    out = Path(args.out).resolve() if args.out else root / "runs" / method / run_name(args)
    full = args.preset != "smoke" and spec.is_phantom  # only phantom runs replace the shipped models and docs
    models = None if args.no_ship else (Path(args.models_dir).resolve() if args.models_dir else
                                        (root / "models" if full else out / "models"))
    docs = Path(args.docs_dir).resolve() if args.docs_dir else (root / "docs" / docs_name if full else None)
    return RunPlaces(out, models, docs)


def require_cpu(args: argparse.Namespace, method: str) -> None:
    """Refuse a ``--device`` other than the CPU for a method that trains on the CPU only.

    Raises:
        SystemExit: with a one-line message naming the method and the device.
    """
    if str(args.device).split(":")[0] != "cpu":
        raise SystemExit(f"{method}: --device {args.device}: this method searches and trains on the CPU only "
                         "(its presets are sized for CPU cores); use --device cpu")


def add_pick_arguments(parser: argparse.ArgumentParser, *, candidates_help: str, paths_help: str) -> None:
    """``--cell-candidates K``, ``--candidate-steps N``, ``--candidate-paths`` (``PickConfig``, rtdnas and msnas-hw)."""
    from search.train.cine_config import PICK_PATHS, PickConfig  # torch-free

    parser.add_argument("--cell-candidates", type=int, default=1, metavar="K", help=candidates_help)
    parser.add_argument("--candidate-steps", type=int, default=None, metavar="N",
                        help=f"steps of each candidate's short training (default {PickConfig.train_steps})")
    parser.add_argument("--candidate-paths", choices=PICK_PATHS, default=None, help=paths_help)


def pick_from_args(args: argparse.Namespace, method: str):
    """The ``PickConfig`` of the pick flags (None when ``--cell-candidates`` is 1), or one line saying what is wrong.

    Returns:
        ``(pick or None, error or None)``.
    """
    from search.train.cine_config import PickConfig

    for flag, value in (("--candidate-steps", args.candidate_steps), ("--candidate-paths", args.candidate_paths)):
        if value is not None and args.cell_candidates == 1:
            return None, f"{method}: {flag} needs --cell-candidates K with K > 1 (one candidate is the argmax alone)"
    if args.cell_candidates == 1:
        return None, None
    try:
        return PickConfig(candidates=args.cell_candidates,
                          **({} if args.candidate_steps is None else {"train_steps": args.candidate_steps}),
                          **({} if args.candidate_paths is None else {"paths": args.candidate_paths})), None
    except ValueError as exc:
        return None, f"{method}: --cell-candidates / --candidate-steps: {exc}"
