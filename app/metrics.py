"""Segmentation and QC metrics, numpy only (shared by the engine, the reports and the search)."""

from __future__ import annotations

from typing import Iterable

import numpy as np


def dice_per_class(pred: np.ndarray, gt: np.ndarray, classes: Iterable[int]) -> dict[int, float]:
    """Dice of each class between two label maps of the same shape.

    A class absent from both maps scores NaN (undefined) so it can be left out of means.

    Args:
        pred: Integer label map, any shape.
        gt: Integer label map, same shape as ``pred``.
        classes: Label values to score (usually the foreground classes).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    out: dict[int, float] = {}
    for c in classes:
        p = pred == c
        g = gt == c
        denom = int(p.sum()) + int(g.sum())
        out[int(c)] = float("nan") if denom == 0 else 2.0 * float(np.logical_and(p, g).sum()) / denom
    return out


def mean_dice(pred: np.ndarray, gt: np.ndarray, classes: Iterable[int]) -> float:
    """Mean Dice over the classes present in either map (NaN when none is)."""
    scores = [v for v in dice_per_class(pred, gt, classes).values() if not np.isnan(v)]
    return float(np.mean(scores)) if scores else float("nan")


def qc_calibration(predicted: Iterable[float], true: Iterable[float]) -> dict[str, float]:
    """How well predicted Dice tracks true Dice: mean absolute error and Pearson correlation.

    Pairs with a NaN on either side are ignored. Pearson is NaN when either side is constant.
    """
    p = np.asarray(list(predicted), dtype=np.float64)
    t = np.asarray(list(true), dtype=np.float64)
    ok = ~(np.isnan(p) | np.isnan(t))
    p, t = p[ok], t[ok]
    if p.size == 0:
        return {"qc_mae": float("nan"), "qc_pearson": float("nan"), "n": 0}
    mae = float(np.mean(np.abs(p - t)))
    if p.size < 2 or np.std(p) == 0 or np.std(t) == 0:
        r = float("nan")
    else:
        r = float(np.corrcoef(p, t)[0, 1])
    return {"qc_mae": mae, "qc_pearson": r, "n": int(p.size)}
