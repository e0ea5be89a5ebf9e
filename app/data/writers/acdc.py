"""Cine case -> one ACDC patient folder (``Info.cfg``, ``_4d``, ``_frameNN`` and ``_frameNN_gt``).

Arrays are written ``(X, Y, Z, T)`` with ``X`` = the case's rows, as ``app.data.loaders.acdc``
reads them; intensities as int16 as ACDC ships them; the time step (ms) goes into the 4D header.
Height and Weight in ``Info.cfg`` are fixed placeholders (the phantom has no body size). When every
frame is labelled, ``<name>_4d_gt.nii.gz`` (our extension, ignored by ACDC tools) holds them all.

A whole dataset goes, as ACDC ships it, into ``training/`` and ``testing/`` (:func:`acdc_folder`): the
last ~20% of the patient numbers are the test set (``app.data.writers.official_split``). ACDC's own
test patients carry labels at ED and ES, and so do these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.data.case import Case
from app.data.loaders.nifti import write_nifti
from app.data.writers.official_split import official_part

#: Official part -> the folder ACDC keeps it in.
ACDC_FOLDERS = {"train": "training", "test": "testing"}

# Phantom patient kinds -> ACDC groups.
ACDC_GROUPS = {"normal": "NOR", "dcm": "DCM", "hcm": "HCM", "minf": "MINF", "arv": "RV"}


def acdc_folder(root: Path, patient_number: int, n_patients: int) -> Path:
    """Where patient ``patient_number`` of ``n_patients`` goes: ``root/training`` or ``root/testing``."""
    return Path(root) / ACDC_FOLDERS[official_part(patient_number, n_patients)]


def write_acdc_patient(case: Case, root: Path, patient_number: int) -> Path:
    """Write ``case`` (cine, frames ``(T, Z, H, W)``) as ``root/patientNNN/``; returns that folder."""
    if case.modality != "cine" or case.frames.ndim != 4:
        raise ValueError(f"write_acdc_patient needs a cine case (T, Z, H, W), got {case.modality} {case.frames.shape}")
    name = f"patient{patient_number:03d}"
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    t = case.n_frames
    ed = case.ed if case.ed is not None else 0
    es = case.es if case.es is not None else t // 3
    thickness = float(case.meta.get("slice_thickness_mm", 10.0))
    dt_ms = 1000.0 / case.frame_rate
    zooms = (float(case.spacing_mm[0]), float(case.spacing_mm[1]), thickness)
    volume = np.clip(np.round(case.frames), -32768, 32767).astype(np.int16)
    write_nifti(folder / f"{name}_4d.nii.gz", np.transpose(volume, (2, 3, 1, 0)), (*zooms, dt_ms), "msec")
    for idx in sorted({ed, es}):
        write_nifti(folder / f"{name}_frame{idx + 1:02d}.nii.gz", np.transpose(volume[idx], (1, 2, 0)), zooms)
        if case.labels is not None:
            gt = np.transpose(case.labels[idx].astype(np.uint8), (1, 2, 0))
            write_nifti(folder / f"{name}_frame{idx + 1:02d}_gt.nii.gz", gt, zooms)
    if case.labels is not None and len(case.labelled_frames) == t:
        # Our extension (not in ACDC): every frame's labels, so replays can score every frame.
        write_nifti(folder / f"{name}_4d_gt.nii.gz", np.transpose(case.labels.astype(np.uint8), (2, 3, 1, 0)), zooms)
    group = ACDC_GROUPS.get(case.meta.get("anatomy", {}).get("kind", ""), "NOR")
    (folder / "Info.cfg").write_text(
        f"ED: {ed + 1}\nES: {es + 1}\nGroup: {group}\nHeight: 170.0\nNbFrame: {t}\nWeight: 70.0\n")
    return folder
