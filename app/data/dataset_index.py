"""The labelled cases of a ``KIND:DIR`` dataset folder and its official split, indexed without reading images.

The one place the datasets' own splits are read: ``python -m search ... --data KIND:DIR`` (through
``search.data``, which re-exports this module) and ``python -m app validate KIND:DIR [--part test]``
both index a folder here, so training's test part and validation's test part are the same cases.

``open_dataset(spec)`` finds every labelled case of the folder, the patient it belongs to, the
official split part it is in (where the dataset has one) and, where cheap to read, its acquisition
quality; ``CaseRef.load()`` reads one case through the project's loaders (``app.data.loaders``).
``cases_of_part(index, "all" | "test")`` picks what ``validate --part`` asks for.

Official splits:

* CAMUS 2023: ``database_split/subgroup_{training,validation,testing}.txt`` (beside or above the
  patient folders, which may sit in ``database_nifti/``); CAMUS 2019: ``training/`` and ``testing/``
  (the 2019 ``testing/`` patients have no labels: no labelled test part).
* ACDC: ``training/`` and ``testing/``.
* EchoNet-Dynamic: the ``Split`` column of ``FileList.csv`` (TRAIN, VAL, TEST).

A folder of patients with no such files (and every ``dicom:`` / ``nifti:`` folder) has no official
split. Cases without ground truth (the 2019 CAMUS test set, an EchoNet video without tracings, a
DICOM file with no mask beside it) are counted and left out. Case ids are anonymous
(``<kind>-<12 hex digits>``, a hash of the file name), so run folders, logs, cards and validation
reports never carry a file name or a patient identifier.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from app.data.case import ACDC_LABELS, CAMUS_LABELS, Case, DataError
from app.data.data_spec import DataSpec

log = logging.getLogger(__name__)

#: Official part names of the datasets' own splits.
OFFICIAL_PARTS = ("train", "val", "test")
CAMUS_SPLIT_FILES = {"subgroup_training.txt": "train", "subgroup_validation.txt": "val",
                     "subgroup_testing.txt": "test"}
CAMUS_VIEW = "4CH"  # the apical 4-chamber view, the app's echo view
ASSUMED_ECHO_FPS = 30.0


def anonymous_id(kind: str, name: str) -> str:
    """``<kind>-<12 hex>``: a stable id for a case or patient that does not show its name."""
    return f"{kind}-{hashlib.sha256(f'{kind}/{name}'.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class CaseRef:
    """One labelled case of a dataset folder, not read yet.

    Attributes:
        case_id: Anonymous case id.
        patient: Anonymous patient id (several recordings of one patient share it).
        modality: ``"echo"`` or ``"cine"``.
        official: Official split part (``"train"``, ``"val"``, ``"test"``) or None.
        stratum: Acquisition-quality bin where the dataset states it cheaply, else None.
        path: Where the case lives (error messages only; never written to cards).
        reader: Reads the case.
    """

    case_id: str
    patient: str
    modality: str
    official: str | None
    stratum: str | None
    path: Path
    reader: Callable[[], Case]

    def load(self) -> Case:
        """Read the case; its id becomes the anonymous one and ``meta`` keeps only split facts (and how
        the echo was acquired, ``echo_attributes``, which tells the app contrast from B-mode)."""
        case = self.reader()
        meta = {"patient": self.patient, "official_split": self.official}
        if isinstance(case.meta.get("echo_attributes"), dict):
            meta["echo_attributes"] = dict(case.meta["echo_attributes"])
        return replace(case, case_id=self.case_id, meta=meta).validate()


@dataclass(frozen=True)
class DatasetIndex:
    """The labelled cases of one ``--data`` folder.

    Attributes:
        spec: The spec it was opened from.
        refs: The labelled cases, in path order.
        unlabelled: Cases found without ground truth (left out).
        label_map: The dataset's label map where it is fixed by the format (None: per case).
        official: How the official split was found, in words (None: no official split).
    """

    spec: DataSpec
    refs: tuple[CaseRef, ...]
    unlabelled: int
    label_map: Mapping[int, str] | None
    official: str | None

    @property
    def modalities(self) -> set[str]:
        return {r.modality for r in self.refs}

    @property
    def patients(self) -> list[str]:
        return sorted({r.patient for r in self.refs})


def open_dataset(spec: DataSpec, *, warn_unlabelled: bool = True) -> DatasetIndex:
    """Index the labelled cases of ``spec``'s folder.

    ``warn_unlabelled``: log one warning when cases without ground truth were left out (a caller
    that reports ``DatasetIndex.unlabelled`` itself passes False).

    Raises:
        DataError: the folder holds no labelled case of its kind (naming the folder and what was
            expected), or an official split file is unreadable.
    """
    if spec.is_phantom or spec.root is None:
        raise ValueError("open_dataset reads dataset folders; the phantom is rendered by app.data.datasets")
    index = _INDEXERS[spec.kind](spec)
    if not index.refs:
        extra = f" ({index.unlabelled} without ground truth)" if index.unlabelled else ""
        raise DataError(spec.root, f"no labelled {spec.dataset_name} cases found{extra}; expected {_EXPECTED[spec.kind]}")
    if index.unlabelled and warn_unlabelled:
        log.warning("%s: %d cases without ground truth left out", spec.dataset_name, index.unlabelled)
    return index


#: What ``cases_of_part`` picks: every labelled case, or the dataset's official test part.
PARTS = ("all", "test")
_NO_SPLIT = {
    "camus": "no database_split/subgroup_testing.txt and no training/ + testing/ folders",
    "acdc": "no training/ + testing/ folders",
    "echonet": "no Split column values",
    "dicom": "a DICOM folder has none",
    "nifti": "a NIfTI folder has none",
}


def cases_of_part(index: DatasetIndex, part: str) -> list[CaseRef]:
    """The labelled cases of ``part``: ``"all"`` of them, or the official ``"test"`` part.

    Raises:
        DataError: ``"test"`` of a dataset without an official split, or whose official test part
            has no labelled case (the CAMUS 2019 ``testing/`` patients have no labels), naming the
            folder and why, in one line. ValueError: an unknown part.
    """
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r} (use {' or '.join(PARTS)})")
    if part == "all":
        return list(index.refs)
    spec = index.spec
    if index.official is None:
        raise DataError(spec.root, f"this {spec.dataset_name} folder has no official test part "
                                   f"({_NO_SPLIT[spec.kind]})")
    refs = [r for r in index.refs if r.official == "test"]
    if not refs:
        left_out = f"; {index.unlabelled} cases without ground truth were left out" if index.unlabelled else ""
        release = " (the 2019 release gives no labels for testing/)" if spec.kind == "camus" and "2019" in index.official else ""
        raise DataError(spec.root, f"the official test part of this {spec.dataset_name} folder ({index.official}) "
                                   f"has no labelled case{release}{left_out}")
    return refs


def _patient_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"patient\d+", p.name))


# ------------------------------------------------------------------------------------------- CAMUS
def _camus_split_files(roots: list[Path]) -> dict[str, str] | None:
    """Patient name -> official part from the first ``database_split`` folder found, or None."""
    for root in roots:
        folder = root / "database_split"
        if not folder.is_dir():
            continue
        parts: dict[str, str] = {}
        for name, part in CAMUS_SPLIT_FILES.items():
            path = folder / name
            if path.is_file():
                for line in path.read_text(errors="replace").split():
                    parts[line.strip()] = part
        if parts:
            return parts
    return None


def _camus(spec: DataSpec) -> DatasetIndex:
    from app.data.loaders.acdc import read_cfg
    from app.data.loaders.camus import load_camus_patient

    root = spec.root
    folders: list[tuple[Path, str | None]] = []
    official = None
    if (root / "training").is_dir() or (root / "testing").is_dir():  # the 2019 release
        for sub, part in (("training", "train"), ("testing", "test")):
            if (root / sub).is_dir():
                folders += [(p, part) for p in _patient_dirs(root / sub)]
        official = "CAMUS 2019 training/ and testing/ folders"
    else:
        base = root / "database_nifti" if (root / "database_nifti").is_dir() else root
        parts = _camus_split_files([root, base.parent])
        folders = [(p, parts.get(p.name) if parts else None) for p in _patient_dirs(base)]
        official = "CAMUS database_split/subgroup_*.txt" if parts else None
    refs, unlabelled = [], 0
    for folder, part in folders:
        name = folder.name
        if not any(folder.glob(f"{name}_{CAMUS_VIEW}_*_gt.*")):
            unlabelled += 1
            continue
        cfg_path = folder / f"Info_{CAMUS_VIEW}.cfg"
        quality = read_cfg(cfg_path).get("ImageQuality", "").lower() if cfg_path.is_file() else ""
        patient = anonymous_id("camus", name)
        refs.append(CaseRef(anonymous_id("camus", f"{name}_{CAMUS_VIEW}"), patient, "echo", part,
                            quality if quality in ("good", "medium", "poor") else None, folder,
                            lambda f=folder: load_camus_patient(f, CAMUS_VIEW)))
    return DatasetIndex(spec, tuple(refs), unlabelled, dict(CAMUS_LABELS), official)


# -------------------------------------------------------------------------------------------- ACDC
def _acdc(spec: DataSpec) -> DatasetIndex:
    from app.data.loaders.acdc import is_acdc_patient, load_acdc_patient

    root = spec.root
    base = root / "database" if (root / "database").is_dir() else root
    subs = [(base / s, p) for s, p in (("training", "train"), ("testing", "test")) if (base / s).is_dir()]
    folders = [(f, part) for sub, part in subs for f in _patient_dirs(sub)] if subs else [
        (f, None) for f in _patient_dirs(base)]
    refs, unlabelled = [], 0
    for folder, part in folders:
        if not is_acdc_patient(folder):
            continue
        if not any(folder.glob(f"{folder.name}_frame*_gt.nii*")):
            unlabelled += 1
            continue
        cid = anonymous_id("acdc", folder.name)
        refs.append(CaseRef(cid, cid, "cine", part, None, folder, lambda f=folder: load_acdc_patient(f)))
    return DatasetIndex(spec, tuple(refs), unlabelled, dict(ACDC_LABELS),
                        "ACDC training/ and testing/ folders" if subs else None)


# ----------------------------------------------------------------------------------------- EchoNet
def _echonet(spec: DataSpec) -> DatasetIndex:
    from app.data.loaders.echonet import ECHONET_LABELS, EchoNetDataset

    ds = EchoNetDataset(spec.root)
    refs, unlabelled = [], 0
    for name in ds.names():
        if not ds.tracings.get(name):
            unlabelled += 1
            continue
        split = ds.files[name]["Split"].strip().lower()
        cid = anonymous_id("echonet", name)
        refs.append(CaseRef(cid, cid, "echo", split if split in OFFICIAL_PARTS else None, None,
                            spec.root / "Videos" / f"{name}.avi", lambda n=name: ds.load(n)))
    return DatasetIndex(spec, tuple(refs), unlabelled, dict(ECHONET_LABELS), "EchoNet FileList.csv Split column")


# ------------------------------------------------------------------------------------------- DICOM
def _dicom_header(path: Path):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types for a damaged header
        raise DataError(path, f"unreadable DICOM header ({type(exc).__name__}: {exc})") from None


def _dicom(spec: DataSpec) -> DatasetIndex:
    from app.data.loaders.dicom import is_dicom, load_dicom, mask_beside
    from app.data.loaders.dicom_seg import is_dicom_seg

    files = sorted(p for p in spec.root.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and not p.name.endswith(("_mask.npz", ".nii", ".nii.gz", ".json")) and is_dicom(p))
    images, segs = [], {}
    for path in files:
        ds = _dicom_header(path)
        if is_dicom_seg(ds):
            for series in ds.get("ReferencedSeriesSequence", []):
                for inst in series.get("ReferencedInstanceSequence", []):
                    segs[str(inst.get("ReferencedSOPInstanceUID", ""))] = path
        else:
            images.append((path, ds))
    refs, unlabelled = [], 0
    for path, ds in images:
        seg = segs.get(str(ds.get("SOPInstanceUID", "")))
        mask = mask_beside(path)
        if mask is None and seg is None:
            unlabelled += 1
            continue
        modality = "cine" if str(ds.get("Modality", "US")).upper() == "MR" else "echo"
        patient_id = str(ds.get("PatientID", "") or "")
        rel = str(path.relative_to(spec.root))
        patient = anonymous_id("dicom", f"patient/{patient_id}") if patient_id else anonymous_id("dicom", rel)
        reader = partial(load_dicom, path) if mask is not None else partial(_load_with_seg, path, seg)
        refs.append(CaseRef(anonymous_id("dicom", rel), patient, modality, None, None, path, reader))
    return DatasetIndex(spec, tuple(refs), unlabelled, None, None)


def _load_with_seg(path: Path, seg: Path) -> Case:
    from app.data.loaders.dicom import load_dicom
    from app.data.loaders.dicom_seg import read_dicom_seg

    case = load_dicom(path)
    spatial = case.frames.shape[:3] if case.modality == "echo" else (case.frames.shape[0], *case.frames.shape[2:])
    labels, label_map, labelled = read_dicom_seg(seg, spatial)
    if case.modality == "cine":
        labels = labels[:, None]
    return replace(case, labels=labels, label_map=label_map, labelled_frames=labelled).validate()


# ------------------------------------------------------------------------------------------- NIfTI
def _nifti_label_map(root: Path, ndim: int) -> dict[int, str]:
    """``labels.json`` (value -> name) in ``root``, else ACDC for 4D and CAMUS for 2D+t."""
    path = root / "labels.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            out = {int(k): str(v) for k, v in doc.items()}
        except (ValueError, AttributeError) as exc:
            raise DataError(path, f"must map label values to class names, e.g. {{\"1\": \"MYO\"}} ({exc})") from None
        out.setdefault(0, "background")
        return out
    return dict(ACDC_LABELS) if ndim == 4 else dict(CAMUS_LABELS)


def _nifti_stem(path: Path) -> str:
    return path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.name[: -len(".nii")]


def _nifti(spec: DataSpec) -> DatasetIndex:
    import nibabel as nib

    images = sorted(p for p in spec.root.rglob("*.nii*") if p.name.endswith((".nii", ".nii.gz"))
                    and not _nifti_stem(p).endswith("_gt"))
    refs, unlabelled = [], 0
    for path in images:
        stem = _nifti_stem(path)
        gt = next((path.with_name(f"{stem}_gt{e}") for e in (".nii.gz", ".nii")
                   if path.with_name(f"{stem}_gt{e}").is_file()), None)
        if gt is None:
            unlabelled += 1
            continue
        try:
            ndim = len(nib.load(str(path)).shape)
        except Exception as exc:  # nibabel raises several types for a bad header
            raise DataError(path, f"not a readable NIfTI ({type(exc).__name__}: {exc})") from None
        if ndim not in (2, 3, 4):
            raise DataError(path, f"expected a 2D, 2D+t or 3D+t image, got {ndim} dimensions")
        rel = str(path.relative_to(spec.root))
        cid = anonymous_id("nifti", rel)
        label_map = _nifti_label_map(spec.root, ndim)
        refs.append(CaseRef(cid, cid, "cine" if ndim == 4 else "echo", None, None, path,
                            lambda p=path, g=gt, m=label_map: _load_nifti_pair(p, g, m)))
    return DatasetIndex(spec, tuple(refs), unlabelled, None, None)


def _load_nifti_pair(path: Path, gt_path: Path, label_map: dict[int, str]) -> Case:
    """Image + labels: 4D ``(X, Y, Z, T)`` as ACDC reads it, 2D(+t) ``(X, Y[, T])`` as CAMUS does."""
    from app.data.frame_rate import CINE_DEFAULT_FPS
    from app.data.loaders.nifti import check_labels, read_nifti

    data, zooms, t_unit = read_nifti(path)
    gt, _, _ = read_nifti(gt_path)
    if gt.shape != data.shape:
        raise DataError(gt_path, f"label shape {gt.shape} does not match image shape {data.shape} of {path.name}")
    gt = check_labels(gt_path, gt, tuple(label_map))
    if data.ndim == 4:
        frames = np.ascontiguousarray(np.transpose(data, (3, 2, 0, 1)).astype(np.float32))
        labels = np.ascontiguousarray(np.transpose(gt, (3, 2, 0, 1)))
        scale = {"msec": 1e-3, "sec": 1.0, "usec": 1e-6}.get(t_unit)
        step = zooms[3] * scale if scale and zooms[3] > 0 else 0.0
        fps = 1.0 / step if 0 < step and 1.0 <= 1.0 / step <= 200.0 else CINE_DEFAULT_FPS
        modality, spacing = "cine", (float(zooms[0]), float(zooms[1]))
    else:
        data, gt = (data[..., None], gt[..., None]) if data.ndim == 2 else (data, gt)
        frames = _echo_uint8(path, np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
        labels = np.ascontiguousarray(np.transpose(gt, (2, 1, 0)))
        modality, spacing, fps = "echo", (float(zooms[1]), float(zooms[0])), ASSUMED_ECHO_FPS
    labelled = tuple(int(t) for t in range(labels.shape[0]))
    return Case(case_id=_nifti_stem(path), modality=modality, frames=frames, labels=labels.astype(np.uint8),
                label_map=label_map, spacing_mm=spacing, frame_rate=fps, labelled_frames=labelled,
                source=str(path)).validate()


def _echo_uint8(path: Path, arr: np.ndarray) -> np.ndarray:
    """Echo intensities as uint8: as they are when within 0..255, else scaled min..max (logged)."""
    if arr.dtype == np.uint8:
        return arr
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if lo >= 0 and hi <= 255:
        return np.nan_to_num(arr).astype(np.uint8)
    log.info("%s: intensities %g..%g scaled to 0..255", path.name, lo, hi)
    return np.round((np.nan_to_num(arr, nan=lo) - lo) * (255.0 / max(hi - lo, 1e-9))).astype(np.uint8)


_INDEXERS: dict[str, Callable[[DataSpec], DatasetIndex]] = {
    "camus": _camus, "acdc": _acdc, "echonet": _echonet, "dicom": _dicom, "nifti": _nifti}
_EXPECTED = {
    "camus": "patientNNNN/ folders with *_4CH_*_gt files (in DIR, DIR/database_nifti or DIR/training)",
    "acdc": "patientNNN/ folders with Info.cfg and *_frameNN_gt.nii.gz (in DIR, DIR/training or DIR/testing)",
    "echonet": "FileList.csv, VolumeTracings.csv and Videos/*.avi",
    "dicom": "*.dcm files with <stem>_mask.npz, <stem>_gt.nii.gz or a DICOM SEG beside them",
    "nifti": "<stem>.nii.gz images with <stem>_gt.nii.gz labels",
}


__all__ = ["CAMUS_SPLIT_FILES", "OFFICIAL_PARTS", "PARTS", "CaseRef", "DatasetIndex", "anonymous_id", "cases_of_part",
           "open_dataset"]
