"""``python -m app models``: the models in ``models/``, each verified against its card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of model cards (default: the shipped models/)")
    parser.add_argument("--modality", choices=("echo", "cine"), help="only this modality")


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(float(value), spec)


def run(args: argparse.Namespace) -> int:
    from app.cards import ModelCardError, default_models_dir, load_card

    folder = args.models_dir or default_models_dir()
    paths = sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []
    if not paths:
        print(f"no model cards in {folder}")
        return 1
    bad = 0
    w = max(28, *(len(p.stem) for p in paths))
    defaults = _default_ids(folder)
    print(f"  {'id':<{w}} {'mod':<5} {'role':<4} {'method':<18} {'Dice':>6} {'QC MAE':>7} {'p50 ms':>7} {'p95 ms':>7}  status")
    for path in paths:
        try:
            card = load_card(path)
        except ModelCardError as exc:
            bad += 1
            print(f"  {path.stem:<{w}} card error: {exc.problem}")
            continue
        if args.modality and card.modality != args.modality:
            continue
        metrics = card.metrics
        dice = (metrics.get("dice") or {}).get("mean") if isinstance(metrics.get("dice"), dict) else None
        latency = metrics.get("latency_ms") or {}
        try:
            card.verify()
            status = "ok"
        except ModelCardError as exc:
            bad += 1
            status = f"BAD: {exc.problem}"
        mark = "*" if card.id in defaults else " "
        print(f"{mark} {card.id:<{w}} {card.modality:<5} {card.role:<4} {card.method:<18} {_fmt(dice):>6} "
              f"{_fmt(metrics.get('qc_mae')):>7} {_fmt(latency.get('p50'), '.1f'):>7} {_fmt(latency.get('p95'), '.1f'):>7}  {status}")
    hardware = {load_card(p).metrics.get("hardware") for p in paths if _loads(p)} - {None}
    if defaults:
        print("* the app's default for its modality (the best Dice within 50 ms / 22 FPS by the cards)")
    if hardware:
        print(f"latency measured on: {'; '.join(sorted(map(str, hardware)))}")
    if bad:
        print(f"{bad} model(s) with problems", file=sys.stderr)
    return 1 if bad else 0


def _default_ids(folder) -> set[str]:
    """Ids of the default seg model (and its QC pair) of each modality present in ``folder``."""
    from app.cards import ModelCardError
    from app.engine.models import default_models, list_models

    ids: set[str] = set()
    for modality in sorted({c.modality for c in list_models(None, folder)}):
        try:
            seg, qc = default_models(modality, folder)
        except ModelCardError:
            continue
        ids |= {seg.id} | ({qc.id} if qc else set())
    return ids


def _loads(path: Path) -> bool:
    from app.cards import ModelCardError, load_card

    try:
        load_card(path)
        return True
    except ModelCardError:
        return False
