"""Phantom cases and patient splits for training, via ``app.data`` (the torch-free generator).

``app.data.datasets.phantom_dataset`` (cached, the data engineer's entry point) is used when it is
available; otherwise cases are rendered directly with the phantom renderers. Splits are always by
patient, never by frame: ``app.data.splits`` when available, else the same seeded rule here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from app.data.case import Case

log = logging.getLogger(__name__)


def phantom_cases(modality: str, n_cases: int, seed: int, *, cache_dir: Path | None = None, **render_options) -> list[Case]:
    """``n_cases`` phantom patients of one modality, deterministic in ``seed``.

    Args:
        modality: ``"echo"`` or ``"cine"``.
        n_cases: Number of patients.
        seed: Dataset seed (patient i is always the same for a seed).
        cache_dir: Where ``phantom_dataset`` may cache rendered cases.
        **render_options: Renderer options (``n_frames``, ``size``, ...).
    """
    try:
        from app.data.datasets import phantom_dataset
    except ImportError:
        phantom_dataset = None
    if phantom_dataset is not None:
        return list(phantom_dataset(modality, n_cases, seed, cache_dir=cache_dir, **render_options))
    if modality == "echo":
        from app.data.phantom.echo import render_echo_case as render
    elif modality == "cine":
        from app.data.phantom.cine import render_cine_case as render
    else:
        raise ValueError(f"unknown modality {modality!r}")
    log.info("rendering %d %s phantom cases (seed %d)", n_cases, modality, seed)
    return [render(seed, i, **render_options) for i in range(n_cases)]


def split_patients(cases: list[Case], fractions: dict[str, float], seed: int) -> dict[str, list[Case]]:
    """Split cases by patient into named parts of the given fractions (seeded shuffle).

    Args:
        cases: One case per patient.
        fractions: Part name -> fraction (summing to 1), e.g. ``{"s1": .4, "s2": .4, "test": .2}``.
            Every part gets at least one patient when there are enough.
        seed: Shuffle seed.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(len(cases))
    names = list(fractions)
    counts = [max(1, int(round(fractions[n] * len(cases)))) for n in names]
    counts[-1] = len(cases) - sum(counts[:-1])
    if counts[-1] < 1:
        raise ValueError(f"{len(cases)} patients are too few for the split {fractions}")
    out: dict[str, list[Case]] = {}
    start = 0
    for name, count in zip(names, counts):
        out[name] = [cases[i] for i in order[start:start + count]]
        start += count
    return out
