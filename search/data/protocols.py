"""What a method needs from a dataset, and its patient-level split of one.

A :class:`Need` says what a method trains on: the modality, the classes (a target label map) and
the least number of frames per case. :func:`check_need` stops with one ``DataError`` naming the
folder when a dataset cannot give it (EchoNet's LV tracings for a myocardium or LV/MYO/LA method,
echo for a cine method); :func:`load_for` reads cases and renumbers their labels to the method's map.

Splits are by patient and deterministic for a seed (``app.data.splits.patient_split``), stratified
by acquisition quality where every patient has a bin and there are enough of them. Where the
dataset has an official test set with labels, it *is* the test part and the other parts are drawn
from the remaining patients in the protocol's proportions; official validation patients join the
pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from app.data.case import ACDC_LABELS, CAMUS_LABELS, ECHO_MYO_LABELS, Case, DataError
from app.data.splits import patient_split
from search.data.index import CaseRef, DatasetIndex
from search.data.labels import class_names, missing_classes, remap_labels

log = logging.getLogger(__name__)

MIN_STRATIFIED = 30  # patients needed before a split is stratified by quality bin


@dataclass(frozen=True)
class Need:
    """What a method trains on.

    Attributes:
        modality: ``"echo"`` (frames, 2D+t) or ``"cine"`` (short-axis slices, 3D+t).
        labels: The label map the method trains with (value -> class name).
        min_frames: Fewest frames a case must have (2: a temporal model needs 2D+t or 3D+t).
        what: The need in words, for errors.
    """

    modality: str
    labels: Mapping[int, str]
    min_frames: int = 1
    what: str = ""


ECHO_MYOCARDIUM = Need("echo", dict(ECHO_MYO_LABELS), 1, "echo frames with a myocardium (MYO) label")
ECHO_CAMUS = Need("echo", dict(CAMUS_LABELS), 1, "B-mode echo frames with LV, MYO and LA labels (as CAMUS)")
CINE_ACDC = Need("cine", dict(ACDC_LABELS), 2, "short-axis cine MR (2D+t slices) with RV, MYO and LV labels")

_MODALITY_WORDS = {"echo": "echo (2D+t)", "cine": "cine MR (short-axis 3D+t)"}


def check_need(index: DatasetIndex, need: Need, method: str) -> None:
    """Stop with one clear error when ``index`` cannot give what ``method`` needs.

    Raises:
        DataError: naming the dataset folder, what it gives and what the method needs.
    """
    spec = index.spec
    if need.modality not in index.modalities:
        gives = " and ".join(_MODALITY_WORDS[m] for m in sorted(index.modalities))
        raise DataError(spec.root, f"{method} needs {need.what}; this {spec.dataset_name} folder gives {gives}")
    if index.label_map is not None:
        lacking = missing_classes(index.label_map, need.labels)
        if lacking:
            has = ", ".join(f"{v} {n}" for v, n in sorted(index.label_map.items()) if v) or "none"
            raise DataError(spec.root, f"{method} needs {need.what}, but {spec.dataset_name} labels only {has} "
                                       f"(no {'/'.join(lacking)}); it would train on a wrong label")


def refs_for(index: DatasetIndex, need: Need) -> list[CaseRef]:
    """The cases of ``need``'s modality (a DICOM folder may hold both)."""
    return [r for r in index.refs if r.modality == need.modality]


def load_for(ref: CaseRef, need: Need, method: str, transform: Callable[[Case], Case] | None = None) -> Case:
    """Read one case with its labels renumbered to ``need.labels`` (then ``transform``, e.g. a trim).

    Raises:
        DataError: the case lacks a class the method needs, has too few frames or no labels.
    """
    case = ref.load()
    where = case.source or str(ref.path)
    if case.n_frames < need.min_frames:
        raise DataError(where, f"{method} needs {need.what}; this case has {case.n_frames} frame(s)")
    present = case.label_map if case.labels is None else {
        v: n for v, n in case.label_map.items() if int(v) == 0 or np.any(case.labels == int(v))}
    absent = missing_classes(present, need.labels)
    if absent and not missing_classes(case.label_map, need.labels):
        # The label map names the class but no voxel carries it: a wrong map (e.g. a 2D+t NIfTI read
        # as CAMUS, 1 = LV, whose 1 is really the myocardium). Never train on empty masks.
        values = ", ".join(f"{v} {n}" for v, n in sorted(present.items()) if int(v) != 0) or "none"
        raise DataError(where, f"has no {'/'.join(absent)} label in its masks (values present: {values}); "
                               f"{method} needs {', '.join(class_names(need.labels))}. If the values mean other "
                               "classes, name them in a labels.json beside the data")
    case = remap_labels(case, need.labels)
    return transform(case) if transform is not None else case


def keep_frames(case: Case, count: int) -> Case:
    """A copy of ``case`` with only ``count`` of its labelled frames, evenly spread (all labelled).

    Bounds the memory of a dataset read for frame-wise training (a CAMUS half sequence is ~20
    full-size frames).
    """
    labelled = list(case.labelled_frames) or list(range(case.n_frames))
    keep = labelled if count >= len(labelled) else [
        labelled[i] for i in np.linspace(0, len(labelled) - 1, count).round().astype(int)]
    labels = None if case.labels is None else np.ascontiguousarray(case.labels[keep])
    return replace(case, frames=np.ascontiguousarray(case.frames[keep]), labels=labels,
                   labelled_frames=tuple(range(len(keep))), ed=None, es=None)


# ------------------------------------------------------------------------------------------ splits
@dataclass(frozen=True)
class Member:
    """What a split reads of a case: its id, patient, official part and quality bin."""

    case_id: str
    patient: str
    official: str | None = None
    stratum: str | None = None


def members_of_refs(refs: Iterable[CaseRef]) -> list[Member]:
    return [Member(r.case_id, r.patient, r.official, r.stratum) for r in refs]


def members_of_cases(cases: Iterable[Case]) -> list[Member]:
    """Members of loaded cases (``CaseRef.load`` put the patient and official part in ``meta``)."""
    return [Member(c.case_id, str(c.meta.get("patient", c.case_id)), c.meta.get("official_split"), c.quality_bin)
            for c in cases]


def _strata(patients: Sequence[str], bins: Mapping[str, str | None]) -> dict[str, str] | None:
    if len(patients) < MIN_STRATIFIED or any(bins.get(p) is None for p in patients):
        return None
    return {p: str(bins[p]) for p in patients}


def _split(patients: Sequence[str], fractions: Mapping[str, float], seed: int,
           bins: Mapping[str, str | None]) -> dict[str, list[str]]:
    strata = _strata(patients, bins)
    parts = patient_split(patients, fractions, seed, strata)
    if strata is not None and any(not v for v in parts.values()):
        parts = patient_split(patients, fractions, seed)
    return parts


def split_by_patient(members: Sequence[Member], fractions: Mapping[str, float], seed: int, *,
                     where: object = "dataset") -> dict[str, list[str]]:
    """Case ids of each part, split by patient (a patient's cases all go to one part).

    Args:
        members: The cases.
        fractions: Part -> fraction of patients (``"test"`` is the official test set where there is one).
        seed: Split seed.
        where: Named in the error.

    Returns:
        Part -> sorted case ids, parts in ``fractions`` order.

    Raises:
        DataError: a part would be empty.
    """
    by_patient: dict[str, list[str]] = {}
    official: dict[str, str | None] = {}
    bins: dict[str, str | None] = {}
    for m in members:
        by_patient.setdefault(m.patient, []).append(m.case_id)
        official[m.patient] = official.get(m.patient) or m.official
        bins[m.patient] = m.stratum
    patients = sorted(by_patient)
    test = [p for p in patients if official[p] == "test"]
    if "test" in fractions and test:
        pool = [p for p in patients if official[p] != "test"]
        rest = {k: f for k, f in fractions.items() if k != "test"}
        total = sum(rest.values()) or 1.0
        parts = _split(pool, {k: f / total for k, f in rest.items()}, seed, bins) if pool else {k: [] for k in rest}
        parts["test"] = test
    else:
        parts = _split(patients, fractions, seed, bins)
    empty = [k for k in fractions if not parts.get(k)]
    if empty:
        raise DataError(where, f"{len(patients)} labelled patients are too few for the parts "
                               f"{', '.join(fractions)}: {', '.join(empty)} would be empty")
    return {k: sorted(i for p in parts[k] for i in by_patient[p]) for k in fractions}


def segqc_parts(members: Sequence[Member], *, n_s1: int, n_s2: int, n_test: int, n_qc_val: int, seed: int,
                where: object = "dataset") -> dict[str, list[str]]:
    """The segqc-hw protocol (Zeng et al. 2021, arXiv:2109.06909): S1 / S2 / test by patient in the proportions
    ``n_s1 : n_s2 : n_test`` (40 / 40 / 20), then S2 into QC training and validation
    (``n_qc_val / n_s2`` of it). An official test set is the test part.

    Returns:
        ``{"s1", "s2_train", "s2_val", "test"}`` -> case ids.
    """
    n = n_s1 + n_s2 + n_test
    parts = split_by_patient(members, {"s1": n_s1 / n, "s2": n_s2 / n, "test": n_test / n}, seed, where=where)
    s2 = set(parts.pop("s2"))
    val = min(1.0, n_qc_val / max(1, n_s2))
    inner = split_by_patient([m for m in members if m.case_id in s2], {"s2_val": val, "s2_train": 1.0 - val},
                             seed + 1, where=where)
    return {"s1": parts["s1"], "s2_train": inner["s2_train"], "s2_val": inner["s2_val"], "test": parts["test"]}


def cine_parts(members: Sequence[Member], *, test_fraction: float, val_fraction: float, seed: int,
               where: object = "dataset") -> dict[str, list[str]]:
    """The cine methods' split (msnas-hw Sec. 4.2): test (official where there is one), validation,
    and the rest by patient alternately into the search's weight and architecture sets.

    Returns:
        ``{"test", "val", "weight", "arch"}`` -> case ids (``val`` may be empty).
    """
    fractions = {"test": test_fraction, "train": 1.0 - test_fraction}
    parts = split_by_patient(members, fractions, seed, where=where)
    train_ids = set(parts["train"])
    pool = [m for m in members if m.case_id in train_ids]
    patients = sorted({m.patient for m in pool})
    order = [patients[i] for i in np.random.default_rng(np.random.SeedSequence([int(seed), 0xC1E])).permutation(
        len(patients))]
    n_val = int(round(val_fraction * len(patients))) if val_fraction > 0 else 0
    val, rest = order[:n_val], order[n_val:]
    if len(rest) < 2:
        raise DataError(where, f"only {len(rest)} training patients; the search needs a weight and an architecture set")
    ids_of = {p: sorted(m.case_id for m in pool if m.patient == p) for p in patients}

    def ids(ps: Iterable[str]) -> list[str]:
        return sorted(i for p in ps for i in ids_of[p])

    return {"test": parts["test"], "val": ids(val), "weight": ids(rest[0::2]), "arch": ids(rest[1::2])}


def describe_split(members: Sequence[Member], test_ids: Iterable[str], protocol: str, seed: int) -> str:
    """The card's ``split`` words: the protocol, and whether the test part is the official test set."""
    test = set(test_ids)
    official = any(m.official == "test" for m in members if m.case_id in test)
    base = f"{protocol}, by patient, seed {seed}"
    return f"the dataset's official test set as test; {base}" if official else base


def protocol_cases(index: DatasetIndex, need: Need, method: str,
                   parts_of: Callable[[list[Member]], dict[str, list[str]]],
                   transform: Callable[[Case], Case] | None = None) -> dict[str, list[Case]]:
    """Check ``need``, split the patients with ``parts_of`` and read every part's cases.

    Args:
        index: The dataset.
        need: What the method trains on (the labels are renumbered to ``need.labels``).
        method: Named in errors.
        parts_of: The method's split of the cases (e.g. ``segqc_parts`` with its counts).
        transform: Applied to each case as it is read (a trim keeps memory bounded).

    Returns:
        Part -> cases (in id order).
    """
    check_need(index, need, method)
    refs = refs_for(index, need)
    by_id = {r.case_id: r for r in refs}
    parts = parts_of(members_of_refs(refs))
    out = {k: [load_for(by_id[i], need, method, transform) for i in ids] for k, ids in parts.items()}
    log.info("%s: %s", index.spec.dataset_name, ", ".join(f"{k} {len(v)}" for k, v in out.items()))
    return out


__all__ = ["CINE_ACDC", "ECHO_CAMUS", "ECHO_MYOCARDIUM", "Member", "Need", "check_need", "cine_parts", "class_names",
           "describe_split", "keep_frames", "load_for", "members_of_cases", "members_of_refs", "protocol_cases", "refs_for",
           "segqc_parts", "split_by_patient"]
