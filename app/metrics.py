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


# -- matching the model's classes to the ground truth's, by name ---------------------------------------
_CLASS_ALIASES = {
    "bg": "background", "myo": "myocardium", "lv myocardium": "myocardium", "lv myo": "myocardium",
    "left ventricular myocardium": "myocardium", "lv cavity": "lv", "lv blood pool": "lv", "left ventricle": "lv",
    "lv endocardium": "lv", "la cavity": "la", "left atrium": "la", "rv cavity": "rv", "right ventricle": "rv",
}
NOT_SCORED_REASON = ("the ground truth has no class of that name (classes are matched by name, case-insensitive): "
                     "not scored, and not counted as Dice 0")


def class_key(name: str) -> str:
    """A class name reduced to compare across label maps: case, ``_``/``-`` and known synonyms
    (``MYO`` = ``myocardium``, ``LV cavity`` = ``LV``, ...) do not matter."""
    key = " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())
    return _CLASS_ALIASES.get(key, key)


class ClassMatch:
    """Which of a model's classes can be scored against a ground truth, and how its labels map.

    Built by ``match_classes``. ``scored`` holds the model's foreground labels to score; ``remap``
    turns a ground-truth label map into the model's numbering (classes the model lacks become 0).
    Without a known ground-truth label map it is the identity (labels compared by number).

    Attributes:
        scored: Model labels to score, ascending.
        ground_truth_label: Model label -> the ground-truth label it is scored against.
        not_scored: Model label -> name, for the model's classes the ground truth does not have.
        by_name: Whether the match was made by name (False: no label map known, compared by number).
    """

    def __init__(self, scored: dict[int, int], not_scored: dict[int, str], by_name: bool):
        self.ground_truth_label = dict(sorted(scored.items()))
        self.scored = tuple(self.ground_truth_label)
        self.not_scored = dict(sorted(not_scored.items()))
        self.by_name = by_name
        self._lut: np.ndarray | None = None
        if any(m != g for m, g in self.ground_truth_label.items()):  # same numbers: nothing to remap
            lut = np.zeros(256, np.uint8)
            for model_label, gt_label in self.ground_truth_label.items():
                if 0 <= gt_label < 256:
                    lut[gt_label] = model_label
            self._lut = lut

    def remap(self, gt: np.ndarray) -> np.ndarray:
        """``gt`` in the model's numbering: matched classes take the model's label, the rest 0."""
        if self._lut is None:
            return gt
        return self._lut[np.asarray(gt, dtype=np.uint8)]

    def dice(self, pred: np.ndarray, gt: np.ndarray) -> dict[int, float]:
        """``dice_per_class`` of the scored classes, the ground truth remapped first."""
        return dice_per_class(pred, self.remap(gt), self.scored)

    def mean_dice(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """Mean Dice over the scored classes present in either map (NaN when none is, or none is scored)."""
        return mean_dice(pred, self.remap(gt), self.scored)


def match_classes(model_classes: dict[int, str], ground_truth_labels: dict[int, str] | None) -> ClassMatch:
    """Match a model's foreground classes to a ground truth's label map by name (``class_key``).

    A model class is scored only when the ground truth has a class of the same name (e.g. a
    myocardium-only contrast model's ``1 myocardium`` against CAMUS ``2 MYO``); the others are
    ``not_scored``. With no ground-truth label map (None or empty) classes are compared by number.
    """
    foreground = {int(k): str(v) for k, v in model_classes.items() if int(k) != 0}
    if not ground_truth_labels:
        return ClassMatch({c: c for c in foreground}, {}, by_name=False)
    by_key: dict[str, int] = {}
    for label, name in sorted((int(k), v) for k, v in ground_truth_labels.items()):
        if label != 0:
            by_key.setdefault(class_key(name), label)
    scored = {c: by_key[class_key(n)] for c, n in foreground.items() if class_key(n) in by_key}
    return ClassMatch(scored, {c: n for c, n in foreground.items() if c not in scored}, by_name=True)
