"""``python -m search cine-qc``: train, score and ship the per-frame QC of a shipped cine model."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", help="smoke | default (default: default)")
    parser.add_argument("--seg-model", metavar="ID", help="the cine segmentation model to score (default: the cine default model in the models folder)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run folder (default: runs/cine-qc/<preset>)")
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of model cards (default: the shipped models/)")
    parser.add_argument("--seed", type=int, help="split / initialisation seed (default 0)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the preset's)")
    parser.add_argument("--no-ship", action="store_true", help="train and score only; export nothing")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default 1)")
    from search.train import precision

    precision.add_argument(parser)
    parser.add_argument("--challenge", action="store_true",
                        help="score the current cine default on the same test patients and make --seg-model the "
                             "default when it meets 50 ms / 22 FPS with its QC and its Dice is at least the default's")


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import sys

    from app.cards import ModelCardError
    from search.methods.cine_qc.config import preset
    from search.methods.cine_qc.run import run as run_qc

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from app.engine.models import default_models
    from search.train import precision

    precision.use_args(args, args.preset)

    try:
        seg_model = args.seg_model or _clip_model(default_models("cine", args.models_dir)[0])
        cfg = preset(args.preset, seg_model=seg_model, seed=args.seed, epochs=args.epochs)
    except ModelCardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / "cine-qc" / cfg.preset
    try:
        report = run_qc(cfg, out, models_dir=args.models_dir, ship=not args.no_ship, threads=args.threads,
                        challenge=getattr(args, "challenge", False))
    except ModelCardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t = report["test_torch"]
    seg = report["seg_dice_test_patients"]
    print(json.dumps({"seg_model": report["seg_model"], "qc_mae": t["qc_mae"], "qc_pearson": t["qc_pearson"],
                      "test_patients": report["patients"]["test"], "seg_dice": seg["mean"], "seg_dice_ci95": seg["ci95"],
                      "shipped": report.get("shipped", {}).get("id"), "challenge": report.get("challenge")}))
    print(f"report   {out / 'report.json'}")
    return 0


def _clip_model(card) -> str:
    """The model the cine QC learns from: behind a streaming default retrained from a clip model of the same
    frame size (``retrained_from``), that clip model (its QC then serves both); otherwise the default itself."""
    base = (card.raw.get("retrained_from") or {}).get("card") if card.streaming is not None else None
    if base is None:
        return card.id
    from app.cards import ModelCardError
    from app.engine.models import find_model

    try:  # a streaming model at another frame size than its clip model gets a QC of its own
        same_size = tuple(find_model(base, card.card_path.parent).input_shape[-2:]) == tuple(card.input_shape[-2:])
    except ModelCardError:  # its clip model is not in the folder
        same_size = False
    return base if same_size else card.id
