"""``python -m app replay SOURCE --report FILE.json``: headless replay for validation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a recording (DICOM, video, NIfTI 4D, ACDC folder, image folder, phantom case), "
                             "phantom:echo|cine, camera:N or igtl://host:port")
    parser.add_argument("--report", required=True, type=Path, metavar="FILE.json", help="where to write the JSON report")
    parser.add_argument("--model", metavar="ID", help="segmentation model id (default: the modality's default)")
    parser.add_argument("--fast", action="store_true", help="every frame as fast as possible (default: paced at the source rate)")
    parser.add_argument("--masks", type=Path, metavar="OUT.nii.gz", help="also write the masks as NIfTI (rows x cols x time)")
    parser.add_argument("--csv", type=Path, metavar="OUT.csv", help="also write per-frame timings and Dice as CSV")
    parser.add_argument("--slice", type=int, metavar="Z", help="cine: the short-axis slice to replay")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (live sources: otherwise until Ctrl-C)")
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of model cards (default: the shipped models/)")
    parser.add_argument("--deadline-ms", type=float, default=50.0, help="latency budget per frame (default 50)")


def run(args: argparse.Namespace) -> int:
    import logging

    from app.cards import ModelCardError
    from app.data.case import DataError
    from app.engine.replay import replay, summary_lines

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = replay(args.source, report=args.report, model_id=args.model, fast=args.fast,
                        models_dir=args.models_dir, masks_out=args.masks, csv_out=args.csv,
                        slice_index=args.slice, max_frames=args.max_frames, deadline_ms=args.deadline_ms)
    except (DataError, ModelCardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary_lines(report):
        print(line)
    print(f"report   {args.report}")
    return 1 if report.get("source_error") else 0
