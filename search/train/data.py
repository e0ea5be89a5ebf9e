"""Phantom cases and patient splits for training, via ``app.data`` (the torch-free generator).

``app.data.datasets.phantom_dataset`` (cached, the data engineer's entry point) is used when it is
available; otherwise cases are rendered directly with the phantom renderers. Splits are always by
patient, never by frame: ``app.data.splits`` when available, else the same seeded rule here.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
    """Split cases by patient into named parts (``app.data.splits.patient_split``), stratified by
    acquisition-quality bin when every case has one, so each part sees good and poor sequences
    (unstratified when there are too few patients per bin to fill every part).

    Args:
        cases: One case per patient (unique ``case_id``).
        fractions: Part name -> fraction, e.g. ``{"s1": .4, "s2": .4, "test": .2}``.
        seed: Split seed.

    Returns:
        Part name -> cases, in ``case_id`` order.
    """
    from app.data.splits import patient_split

    by_id = {c.case_id: c for c in cases}
    if len(by_id) != len(cases):
        raise ValueError("split_patients needs one case per patient (duplicate case_id)")
    bins = {c.case_id: c.quality_bin for c in cases}
    strata = bins if all(b is not None for b in bins.values()) else None
    parts = patient_split(by_id, fractions, seed, strata=strata)
    if strata is not None and any(not ids for ids in parts.values()):
        parts = patient_split(by_id, fractions, seed)  # too few patients per stratum: plain split
    empty = [name for name, ids in parts.items() if not ids]
    if empty:
        raise ValueError(f"{len(cases)} patients are too few for the split {fractions}: {empty} would be empty")
    return {name: [by_id[i] for i in ids] for name, ids in parts.items()}
