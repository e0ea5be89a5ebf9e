"""``python -m app validate SOURCE... --report FILE.json``: validate a model on labelled recordings.

SOURCE is a labelled recording, a folder of them, or a dataset as ``KIND:DIR`` (``camus``, ``acdc``,
``echonet``, ``dicom``, ``nifti``, the ``--data`` specs of ``python -m search``); ``--part test``
keeps only each dataset's official test part.

Exit status as ``replay``: 0 done; 1 a source failed part-way or an output could not be written;
2 bad input (one line ``error: ...``, nothing run), including a source without ground truth;
130 / 143 stopped by SIGINT / SIGTERM (the report covers the cases run so far).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.engine.replay_cli import (EXIT_BY_SIGNAL, _install_logging, _remove_logging, add_echo_mode_option,
                                   run_guarded)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="labelled recordings: a phantom case, phantom:echo?seed=..&case=.., an ACDC or CAMUS "
                             "patient folder, a DICOM with <stem>_mask.npz beside it, a folder of such recordings; "
                             "or a labelled dataset as KIND:DIR with KIND one of camus, acdc, echonet, dicom "
                             "(with <stem>_mask.npz or a DICOM SEG beside each file), nifti (<stem> + <stem>_gt pairs)")
    parser.add_argument("--part", choices=("all", "test"), default="all",
                        help="of a KIND:DIR dataset: every labelled case (all, the default) or its official test part "
                             "(test: CAMUS database_split/subgroup_testing.txt, ACDC testing/, EchoNet Split TEST)")
    parser.add_argument("--report", required=True, type=Path, metavar="FILE.json", help="where to write the JSON report")
    parser.add_argument("--model", metavar="ID", help="segmentation model id (default: the modality's default)")
    parser.add_argument("--html", type=Path, metavar="FILE.html", help="also write a self-contained HTML page with plots")
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of model cards (default: the shipped models/)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--fast", dest="fast", action="store_true", help="every frame as fast as possible")
    pace.add_argument("--paced", dest="fast", action="store_false", help="paced at the source rate (the default)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="at most N frames of each source")
    add_echo_mode_option(parser)


def run(args: argparse.Namespace) -> int:
    handler = _install_logging()
    try:
        return _run(args)
    finally:
        _remove_logging(handler)


def _summary(out: dict) -> list[str]:
    def num(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = []
    for data in out.get("data", ()):
        split = f"official split: {data['official_split']}" if data["official_split"] else "no official split"
        left = f"; {data['unlabelled_left_out']} without ground truth left out" if data["unlabelled_left_out"] else ""
        n = data["cases"]
        lines.append(f"data     {data['dataset']}, part {data['part']}: {n} labelled case{'' if n == 1 else 's'} "
                     f"({split}{left})")
    for case in out["cases"]:
        classes = ", ".join(f"{n} Dice {num(k['dice'])} HD95 {num(k['hd95_px'])} px" for n, k in case["classes"].items())
        lines.append(f"case     {case['name']}: {classes}" if classes or not case.get("source_error")
                     else f"case     {case['name']}: {case['source_error']}")
        echo = case.get("echo_mode")
        if echo:
            lines.append(f"         {echo['reason']}; models {case['models']['seg']}"
                         + (f" ({echo['note']})" if echo.get("note") else ""))
    if out.get("classes_not_scored"):
        skipped = out["classes_not_scored"]
        lines.append(f"note     not scored: {', '.join(skipped['classes'])} (the ground truth of "
                     f"{len(skipped['cases'])} case(s) has no class of that name; not counted as Dice 0)")
    overall = out["overall"]
    qc, tl, lat = overall["qc_calibration"], overall["traffic_light"], overall["latency_ms"]
    lines += [f"qc       MAE {num(qc['mae'])}, Pearson {num(qc['pearson'])}; light right {num(tl['accuracy'])} "
              f"of {tl['n']} frames",
              f"latency  p50 {num(lat['p50'])}  p95 {num(lat['p95'])}  p99 {num(lat['p99'])} ms, {overall['fps']:.1f} fps"]
    return lines


def _run(args: argparse.Namespace) -> int:
    from app.cards import ModelCardError
    from app.data.case import DataError
    from app.engine.replay import ReplayArgumentError
    from app.validate import OutputError, ValidateInputError, validate

    if args.max_frames is not None and args.max_frames <= 0:
        print(f"error: --max-frames must be at least 1, got {args.max_frames}", file=sys.stderr)
        return 2
    out, rc = run_guarded(
        lambda stop: validate(args.sources, report=args.report, model_id=args.model, html_out=args.html,
                              models_dir=args.models_dir, fast=args.fast, max_frames=args.max_frames, stop=stop,
                              echo_mode=getattr(args, "echo_mode", "auto"), part=getattr(args, "part", "all")),
        expected=(DataError, ModelCardError, OutputError, ReplayArgumentError, ValidateInputError),
        before="validate could write its report",
        os_name=lambda exc: Path(exc.filename).name if exc.filename else "input")
    if rc is not None:
        return rc
    for line in _summary(out):
        print(line)
    print(f"report   {args.report}")
    if out.get("interrupted_by"):
        return EXIT_BY_SIGNAL.get(out["interrupted_by"], 130)
    failed = any(c.get("source_error") or c.get("output_error") or not c["complete"] for c in out["cases"])
    return 1 if failed else 0
