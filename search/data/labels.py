"""Label maps by class name: a dataset's values -> the values a method trains on.

Datasets number their classes differently (ACDC 1 RV, 2 MYO, 3 LV; CAMUS 1 LV, 2 MYO, 3 LA;
EchoNet 1 LV; the contrast-echo phantom 1 myocardium). A method declares the classes it needs as a
label map (value -> name); :func:`remap_labels` matches the two by canonical class name, sends
every other class to background, and raises one ``DataError`` naming the case and the missing class
when the dataset has no such class. A method is never trained on a class it did not ask for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import numpy as np

from app.data.case import Case, DataError

#: Spellings seen in label maps -> canonical class name.
SYNONYMS: Mapping[str, str] = {
    "background": "background", "bg": "background",
    "myo": "MYO", "myocardium": "MYO", "lv myocardium": "MYO", "lv_myocardium": "MYO",
    "lv": "LV", "lv cavity": "LV", "lv_cavity": "LV", "lv blood pool": "LV", "left ventricle": "LV",
    "rv": "RV", "rv cavity": "RV", "rv_cavity": "RV", "right ventricle": "RV",
    "la": "LA", "left atrium": "LA",
}


def canonical(name: str) -> str:
    """``"myocardium"`` -> ``"MYO"``, ``"LV cavity"`` -> ``"LV"``; unknown names come back upper-case."""
    key = " ".join(str(name).strip().lower().replace("-", " ").split())
    return SYNONYMS.get(key, key.upper())


def class_names(label_map: Mapping[int, str]) -> list[str]:
    """Canonical foreground class names of ``label_map``, in value order."""
    return [canonical(n) for v, n in sorted(label_map.items()) if int(v) != 0]


def missing_classes(label_map: Mapping[int, str], target: Mapping[int, str]) -> list[str]:
    """Canonical names of ``target``'s foreground classes that ``label_map`` lacks."""
    have = set(class_names(label_map))
    return [n for n in class_names(target) if n not in have]


def value_table(source: Mapping[int, str], target: Mapping[int, str], where: str) -> np.ndarray:
    """A 256-entry lookup: source value -> target value (0 for classes the target does not use).

    Raises:
        DataError: ``target`` has a class that ``source`` lacks (named with ``where``).
    """
    lacking = missing_classes(source, target)
    if lacking:
        have = ", ".join(f"{v} {n}" for v, n in sorted(source.items()) if int(v) != 0) or "none"
        raise DataError(where, f"has no {'/'.join(lacking)} label (its classes: {have}); the method needs "
                               f"{', '.join(class_names(target))}")
    by_name = {canonical(n): int(v) for v, n in target.items() if int(v) != 0}
    table = np.zeros(256, np.uint8)
    for value, name in source.items():
        table[int(value)] = by_name.get(canonical(name), 0)
    return table


def remap_labels(case: Case, target: Mapping[int, str]) -> Case:
    """A copy of ``case`` with its labels renumbered to ``target`` (by class name); other classes -> background.

    Raises:
        DataError: the case has no labels, or lacks one of ``target``'s classes.
    """
    where = case.source or case.case_id
    if case.labels is None or not case.labelled_frames:
        raise DataError(where, "has no labelled frames to train or test on")
    table = value_table(case.label_map, target, where)
    return replace(case, labels=table[case.labels], label_map=dict(target))
