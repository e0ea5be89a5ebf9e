"""The fine-tuning data: phantom or ``--data KIND:DIR``, split by patient into train / val / test.

The model's card says what the data must give: its modality (echo frames or cine clips) and its
classes (``search.data.Need`` built from the card's ``classes``). Dataset labels are renumbered to
the model's classes by name (CAMUS 2 MYO -> the echo model's 1 myocardium); a dataset lacking one
of them stops with one ``DataError`` (``search.data.check_need``), so nothing trains on a wrong
label. The phantom is rendered for the model's modality (``app.data.datasets.phantom_dataset``; echo:
contrast for a myocardium-only model, else B-mode with CAMUS classes) and goes through the same
renumbering and the same split.

Splits are by patient and deterministic for a seed (``search.data.split_by_patient``); a dataset's
official test set is the test part. Echo cases keep ``frames_per_case`` labelled frames (memory);
cine cases are resized to the model grid as they are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from app.data.case import Case, DataError
from search.data import (DataSpec, Need, check_need, describe_split, keep_frames, load_for, members_of_cases,
                         members_of_refs, open_dataset, remap_labels, split_by_patient)
from search.data.labels import class_names
from search.finetune.target import Target

#: Patient fractions of the fine-tuning split (``test`` is the official test set where there is one).
FRACTIONS: Mapping[str, float] = {"train": 0.6, "val": 0.2, "test": 0.2}
PHANTOM_CINE_RENDER = {"n_frames": 20, "n_slices": 4, "shape": (128, 112)}


@dataclass(frozen=True)
class DataOptions:
    """How much data is read.

    Attributes:
        phantom_cases: Phantom patients rendered (``--data phantom``).
        frames_per_case: Echo: labelled frames kept per case.
        seed: Split seed (and the phantom's dataset seed).
    """

    phantom_cases: int = 20
    frames_per_case: int = 4
    seed: int = 0


def need_of(target: Target) -> Need:
    """What ``target`` trains on: its modality and its classes."""
    names = ", ".join(n for v, n in sorted(target.classes.items()) if v)
    if target.modality == "echo":
        return Need("echo", target.classes, 1, f"echo frames labelled {names}")
    return Need("cine", target.classes, 2, f"short-axis cine MR (2D+t slices) labelled {names}")


def echo_variant(target: Target) -> str:
    """The echo phantom for ``target``: contrast (myocardium only), else B-mode (CAMUS classes)."""
    return "contrast" if class_names(target.classes) == ["MYO"] else "bmode"


def _fit(target: Target, opts: DataOptions):
    """The per-case transform: keep a few echo frames, or resize cine to the model grid."""
    if target.modality == "echo":
        return lambda case: keep_frames(case, opts.frames_per_case)
    from search.train.clips import fit_case

    shape = target.input_shape[-2:]
    return lambda case: fit_case(case, shape)


def _phantom_cases(target: Target, opts: DataOptions) -> list[Case]:
    from app.data.datasets import phantom_dataset

    if target.modality == "echo":
        render: dict[str, Any] = {"n_frames": max(10, 2 * opts.frames_per_case), "variant": echo_variant(target)}
    else:
        render = dict(PHANTOM_CINE_RENDER)
    need, fit = need_of(target), _fit(target, opts)
    return [fit(remap_labels(c, need.labels)) for c in phantom_dataset(target.modality, opts.phantom_cases,
                                                                       seed=opts.seed, **render)]


def split_cases(spec: DataSpec, target: Target, opts: DataOptions) -> dict[str, list[Case]]:
    """``{"train", "val", "test"}`` -> cases with the model's labels, split by patient.

    Raises:
        DataError: the data cannot give the model's modality or classes, or has too few patients.
    """
    need = need_of(target)
    where = spec.root or "phantom"
    if spec.is_phantom:
        cases = _phantom_cases(target, opts)
        parts = split_by_patient(members_of_cases(cases), FRACTIONS, opts.seed, where=where)
        by_id = {c.case_id: c for c in cases}
        return {k: [by_id[i] for i in ids] for k, ids in parts.items()}
    index = open_dataset(spec)
    check_need(index, need, f"fine-tuning {target.model_id}")
    refs = [r for r in index.refs if r.modality == need.modality]
    parts = split_by_patient(members_of_refs(refs), FRACTIONS, opts.seed, where=where)
    by_id = {r.case_id: r for r in refs}
    fit = _fit(target, opts)
    return {k: [load_for(by_id[i], need, f"fine-tuning {target.model_id}", fit) for i in ids]
            for k, ids in parts.items()}


def card_data(spec: DataSpec, target: Target, parts: Mapping[str, list[Case]], opts: DataOptions) -> dict[str, Any]:
    """The new card's ``data`` field: dataset, split words, case-list hashes and counts (no case id)."""
    ids = {k: [c.case_id for c in v] for k, v in parts.items()}
    members = members_of_cases([c for v in parts.values() for c in v])
    words = describe_split(members, ids["test"], "fine-tuning train / val / test (60:20:20)", opts.seed)
    extra: dict[str, Any] = {"labels": ", ".join(f"{v} {n}" for v, n in sorted(target.classes.items()) if v)}
    if target.modality == "echo":
        extra["frames_per_patient"] = opts.frames_per_case
    if spec.is_phantom:
        extra["phantom"] = {"modality": target.modality, "cases": opts.phantom_cases}
    return spec.card_info(ids, split=words, seed=opts.seed, **extra)


def check_parts(parts: Mapping[str, list[Case]], where: object) -> None:
    """Every part must hold at least one case."""
    empty = [k for k, v in parts.items() if not v]
    if empty:
        raise DataError(where, f"no cases in the {', '.join(empty)} part(s) of the fine-tuning split")
