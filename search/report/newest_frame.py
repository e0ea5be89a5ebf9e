"""Add ``metrics.dice_newest_frame`` to a shipped cine clip card, measured on its own test slices.

A cine clip card's ``metrics.dice`` scores every position of every clip
(``search.train.evaluate.evaluate_segmentation``). The app runs a clip model on the sliding window
that ends at the arriving frame and shows only the last position
(``app.engine.stages.SegStage``), so a network that is worse at the end of its clip than on average
does worse in the app than its card says. For example, the U-net 3D (D3, IF16) baseline of seed 0
scores 0.630 on its card but about 0.41 in the app: LV Dice falls from 0.78 at the first position
to 0.16 at the last. ``dice_newest_frame`` is the Dice of what the app shows
(``search.train.evaluate.evaluate_newest_frame``). The card writers compute it when they export.
This module adds it to cards exported before that, without touching the ONNX file, its hash or any
other figure.

The test slices are rebuilt from the card's ``data`` (phantom seed, test patients, preset) with the
code that built them at export: ``search.baselines.run.cine_test_dataset`` for the baselines, and
``search.train.clips.clip_dataset`` (one dataset per patient) for msnas-hw and rtdnas. Before
writing, the card's own ``metrics.dice.mean`` is measured again on those slices. It must match to
``DICE_TOLERANCE``, so the new figure is on the same slices as the old one.

    python -m search.report.newest_frame models/baseline-unet3d-d3-if16.json [...] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from app.cards import ModelCard, load_card

DICE_TOLERANCE = 2e-3
_CASE_ID = re.compile(r"^phantom-cine-s(\d+)-(\d+)$")


class NewestFrameError(ValueError):
    """A card whose test slices cannot be rebuilt (not a phantom cine clip card, or its Dice does not reproduce)."""


def is_clip_card(card: ModelCard) -> bool:
    """A cine segmentation model that takes a clip of several frames (not a streaming one-frame model)."""
    shape = card.input_shape
    return (card.modality == "cine" and card.role == "seg" and len(shape) == 5 and int(shape[2]) > 1
            and card.streaming is None)


def _test_indices(card: ModelCard) -> tuple[int, list[int]]:
    data = card.raw.get("data") or {}
    test = (data.get("split") or {}).get("test")
    if not isinstance(test, list) or not test:
        raise NewestFrameError(f"{card.id}: the card lists no test patients (data.split.test)")
    seeds, indices = set(), []
    for case_id in test:
        m = _CASE_ID.match(str(case_id))
        if m is None:
            raise NewestFrameError(f"{card.id}: test patient {case_id!r} is not a phantom cine patient")
        seeds.add(int(m.group(1)))
        indices.append(int(m.group(2)))
    if len(seeds) != 1 or seeds != {int(data.get("seed", -1))}:
        raise NewestFrameError(f"{card.id}: test patients of seeds {sorted(seeds)}, the card's seed is {data.get('seed')}")
    return seeds.pop(), indices


def _float_id(card: ModelCard) -> str:
    quant = card.raw.get("quantization") or {}
    return str(quant.get("float_model") or card.id)


def card_test_datasets(card: ModelCard, patients: int | None = None) -> list:
    """The clip datasets the card's ``metrics.dice`` was measured on, rebuilt from its ``data``
    (``patients``: only the first that many test patients, e.g. for a quick check of one slice)."""
    if not is_clip_card(card):
        raise NewestFrameError(f"{card.id}: not a cine clip segmentation card")
    seed, indices = _test_indices(card)
    indices = indices[:patients] if patients is not None else indices
    preset_name = str((card.raw.get("data") or {}).get("preset", "default"))
    _, _, t, h, w = (int(d) for d in card.input_shape)
    if card.method.startswith("baseline-"):
        from app.data.phantom.cine import render_cine_case
        from search.baselines.presets import get_preset
        from search.baselines.registry import get_baseline
        from search.baselines.run import cine_test_dataset

        preset = get_preset(preset_name)
        spec = get_baseline(_float_id(card).removeprefix("baseline-"))
        if preset.seed != seed or (preset.clip_length, *preset.cine_input) != (t, h, w):
            raise NewestFrameError(f"{card.id}: preset {preset_name!r} (seed {preset.seed}, clip "
                                   f"{preset.clip_length}x{preset.cine_input}) is not the card's ({seed}, {t}x{h}x{w})")
        cases = [render_cine_case(seed, i, **preset.cine_render) for i in indices]
        return [cine_test_dataset(spec, preset, cases)]
    if card.method in ("msnas-hw", "rtdnas"):
        from search.train.clips import clip_dataset, render_case

        if card.method == "msnas-hw":
            from search.methods.msnas_hw.config import preset as method_preset
        else:
            from search.methods.rtdnas.config import preset as method_preset
        cfg = method_preset(preset_name).data
        if cfg.seed != seed or (cfg.clip_length, cfg.height, cfg.width) != (t, h, w):
            raise NewestFrameError(f"{card.id}: preset {preset_name!r} data (seed {cfg.seed}, clip {cfg.clip_length}x"
                                   f"{cfg.height}x{cfg.width}) is not the card's ({seed}, {t}x{h}x{w})")
        return [clip_dataset([render_case(cfg, i)], cfg, train=False, seed=0) for i in indices]
    raise NewestFrameError(f"{card.id}: no rebuild of the test slices for method {card.method!r}")


def onnx_predictor(card: ModelCard, threads: int = 1) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``clip -> (probs, zeros)`` with the card's ONNX file on ``threads`` CPU threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(card.onnx_path), options, providers=["CPUExecutionProvider"])
    name = card.input_name

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = session.run(["probs"], {name: x.astype(np.float32, copy=False)})[0]
        return probs, np.zeros_like(probs[:, :1])

    return predict


def measure(card: ModelCard, threads: int = 1) -> dict[str, Any]:
    """``{"dice_check": the card-protocol Dice measured again, "dice_newest_frame": the new field}``.

    Raises:
        NewestFrameError: the rebuilt slices do not give the card's ``metrics.dice.mean``.
    """
    from search.train.evaluate import evaluate_segmentation, newest_frame_card

    card.verify()
    datasets = card_test_datasets(card)
    predict = onnx_predictor(card, threads)
    classes = {int(k): v for k, v in card.raw["classes"].items()}
    evs = [evaluate_segmentation(predict, ds, len(classes)) for ds in datasets]
    per_class = [float(np.nanmean([e.per_class[c] for e in evs])) for c in range(1, len(classes))]
    check = float(np.mean(per_class))
    stated = float(card.metrics["dice"]["mean"])
    if abs(check - stated) > DICE_TOLERANCE:
        raise NewestFrameError(f"{card.id}: the rebuilt test slices give Dice {check:.4f}, the card says {stated:.4f}; "
                               "not the card's test set, nothing written")
    return {"dice_check": round(check, 4), "dice_newest_frame": newest_frame_card(predict, datasets, classes)}


def with_newest_frame(raw: dict[str, Any], figure: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with ``metrics.dice_newest_frame`` = ``figure``, right after ``metrics.dice``; all else as it was."""
    metrics: dict[str, Any] = {}
    for key, value in raw["metrics"].items():
        if key != "dice_newest_frame":
            metrics[key] = value
        if key == "dice":
            metrics["dice_newest_frame"] = figure
    return {**raw, "metrics": metrics}


def backfill(card_path: Path, *, threads: int = 1, write: bool = True) -> dict[str, Any]:
    """Measure and (``write``) add ``metrics.dice_newest_frame`` to the card at ``card_path``; returns the figures."""
    card = load_card(Path(card_path))
    got = measure(card, threads)
    if write:
        raw = json.loads(Path(card_path).read_text())
        Path(card_path).write_text(json.dumps(with_newest_frame(raw, got["dice_newest_frame"]), indent=2,
                                              allow_nan=False) + "\n")
        load_card(Path(card_path)).verify()  # the ONNX file and its hash are untouched
    return {"id": card.id, "dice": card.metrics["dice"]["mean"], **got}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m search.report.newest_frame", description=__doc__.split("\n\n")[0])
    ap.add_argument("cards", nargs="+", type=Path, help="cine clip cards (models/<id>.json)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--dry-run", action="store_true", help="measure and print, write nothing")
    args = ap.parse_args(argv)
    status = 0
    for path in args.cards:
        try:
            out = backfill(path, threads=args.threads, write=not args.dry_run)
        except NewestFrameError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        nf = out["dice_newest_frame"]
        print(f"{out['id']}: card Dice {out['dice']:.4f} (measured again {out['dice_check']:.4f}), newest frame "
              f"{nf['mean']:.4f} {nf['per_class']} over {nf['frames']} frames" + (" (not written)" if args.dry_run else ""))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
