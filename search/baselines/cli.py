"""``python -m search baselines``: train and export the handcrafted baselines of the papers' tables."""

from __future__ import annotations

import argparse

PRESET_NAMES = ("smoke", "default", "paper")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=PRESET_NAMES, default="default",
                        help="smoke: tiny end-to-end check; default: brief training on a 2-core CPU; paper: full size")
    parser.add_argument("--out", default=None, help="where the ONNX files and cards go (default: models/)")
    parser.add_argument("--work", default=None, help="checkpoints, for resuming (default: runs/baselines/<preset>)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="baselines to run (default: the preset's); see search/baselines/registry.py")
    parser.add_argument("--no-quantize", action="store_true", help="do not try INT8 variants")
    parser.add_argument("--epochs", type=int, nargs=2, metavar=("SEG", "QC"), default=None,
                        help="override the preset's echo training epochs (segmentation, QC), e.g. to train a "
                             "baseline to convergence (use another --work: checkpoints keep their schedule)")
    parser.add_argument("--cine-epochs", type=int, default=None, metavar="N",
                        help="override the preset's cine training epochs (each the preset's steps_per_epoch "
                             "batches), e.g. to train a cine baseline to convergence (use another --work)")
    from search.methods.common_cli import add_data_argument

    from search.train import precision

    precision.add_argument(parser)
    add_data_argument(parser)  # with a dataset: out defaults to <work>/models, work to runs/baselines/<preset>-<kind>


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import logging
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from app.cards import default_models_dir
    from app.data.case import DataError
    from search.methods.common_cli import data_spec
    from search.baselines.presets import get_preset
    from search.baselines.run import run_baselines
    from search.export.summary import format_summary

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from search.train import precision

    precision.use_args(args, args.preset)
    preset = get_preset(args.preset)
    if args.no_quantize:
        preset = dataclasses.replace(preset, quantize=False)
    if getattr(args, "epochs", None) is not None:
        seg_epochs, qc_epochs = args.epochs
        preset = dataclasses.replace(preset, seg_train=dataclasses.replace(preset.seg_train, epochs=seg_epochs),
                                     qc_train=dataclasses.replace(preset.qc_train, epochs=qc_epochs))
    if getattr(args, "cine_epochs", None) is not None:
        if args.cine_epochs < 1:
            print("baselines: --cine-epochs must be at least 1", file=sys.stderr)
            return 2
        preset = dataclasses.replace(preset, cine_train=dataclasses.replace(preset.cine_train, epochs=args.cine_epochs))
    data = data_spec(args)
    work = Path(args.work) if args.work else Path("runs") / "baselines" / (
        preset.name if data.is_phantom else f"{preset.name}-{data.kind}")
    # A dataset's models never replace the shipped ones unless --out says so.
    out = Path(args.out) if args.out else (default_models_dir() if data.is_phantom else work / "models")
    bars: dict[str, tqdm] = {}

    def progress(stage: str, epoch: int, epochs: int, loss: float) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=epochs, desc=stage, unit="epoch", leave=True))
        bar.n = epoch
        bar.set_postfix(loss=f"{loss:.4f}")
        bar.refresh()

    try:
        results = run_baselines(preset, out, work, args.only, progress, data=data)
    except DataError as exc:
        print(f"baselines: --data {data.kind}: {exc}", file=sys.stderr)
        return 1
    for bar in bars.values():
        bar.close()
    cards = [c for r in results for c in r.cards]
    print(format_summary(cards))
    for r in results:
        if r.int8:
            print(f"{r.name}: INT8 {r.int8}")
        if r.error:
            print(f"{r.name}: NOT BUILT: {r.error}")
    return 1 if any(r.error for r in results) else 0
