"""Echo case -> one CAMUS patient folder in the 2023 NIfTI release layout (4-chamber view).

::

    patient0001/patient0001_4CH_half_sequence.nii.gz (+ _gt)   ED -> ES, (X, Y, T)
    patient0001/patient0001_4CH_ED.nii.gz (+ _gt), _ES (+ _gt)  (X, Y, 1)
    patient0001/Info_4CH.cfg    ED, ES, NbFrame, ImageQuality, EF, FrameRate

Arrays are written as SimpleITK writes a ``(T, H, W)`` array (nibabel sees ``(W, H, T)``), grey
uint8, labels uint8 0 bg, 1 LV, 2 MYO, 3 LA, as ``app.data.loaders.camus`` reads them. The phantom
renders only the apical 4-chamber view, so no ``_2CH`` files are written. Sex and Age are left out
(the phantom has no demographics); EF is the single-plane area-length estimate. When the phantom's
ES comes before its ED, the half sequence is the ES..ED (filling) frames in reverse order.

The official split, as the release ships it (:func:`write_camus_split`)::

    database_split/subgroup_training.txt     one patient folder name per line
    database_split/subgroup_validation.txt
    database_split/subgroup_testing.txt      the last ~20% of the patients (``app.data.writers.official_split``)

The release keeps the patient folders in ``database_nifti/`` beside ``database_split/``; the writer
puts them directly in the dataset folder, beside ``database_split/`` (the readers accept both).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from app.data.case import Case
from app.data.loaders.nifti import write_nifti
from app.data.writers.echonet import lv_volumes_ml
from app.data.writers.official_split import official_part

SPLIT_FOLDER = "database_split"
#: Official part -> its file in ``database_split/`` (as CAMUS 2023 names them).
SPLIT_FILES = {"train": "subgroup_training.txt", "val": "subgroup_validation.txt", "test": "subgroup_testing.txt"}


def lv_summary(ed_labels: np.ndarray, es_labels: np.ndarray, spacing_mm) -> tuple[float, float, int]:
    """``(EDV ml, ESV ml, EF %)`` of the LV (label 1) at ED and ES by area-length, as the CAMUS cfg files give them."""
    row_col = (float(spacing_mm[0]), float(spacing_mm[1]))
    edv, esv = lv_volumes_ml((ed_labels == 1).astype(np.uint8), (es_labels == 1).astype(np.uint8), row_col)
    return edv, esv, round(100.0 * (edv - esv) / edv) if edv > 0 else 0


def _grey(frames: np.ndarray) -> np.ndarray:
    if frames.ndim == 3:
        return frames.astype(np.uint8)
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f, dtype=np.uint8), cv2.COLOR_RGB2GRAY) for f in frames])


def half_sequence_indices(ed: int, es: int) -> list[int]:
    """Frame indices from ED to ES (reversed ES..ED when ES comes first)."""
    return list(range(ed, es + 1)) if es >= ed else list(range(ed, es - 1, -1))


def write_camus_patient(case: Case, root: Path, patient_number: int) -> Path:
    """Write echo ``case`` (CAMUS labels, ED and ES set) as ``root/patientNNNN/``; returns that folder."""
    if case.modality != "echo" or case.labels is None or case.ed is None or case.es is None:
        raise ValueError(f"{case.case_id}: CAMUS needs an echo case with labels, ED and ES")
    name = patient_name(patient_number)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    idx = half_sequence_indices(case.ed, case.es)
    frames, labels = _grey(case.frames)[idx], case.labels[idx].astype(np.uint8)
    zooms = (float(case.spacing_mm[1]), float(case.spacing_mm[0]), 1.0)  # (col, row) = nibabel (x, y)

    def save(arr: np.ndarray, stem: str) -> None:
        write_nifti(folder / f"{name}_4CH_{stem}.nii.gz", np.ascontiguousarray(np.transpose(arr, (2, 1, 0))), zooms)

    save(frames, "half_sequence")
    save(labels, "half_sequence_gt")
    for tag, k in (("ED", 0), ("ES", len(idx) - 1)):
        save(frames[k : k + 1], tag)
        save(labels[k : k + 1], f"{tag}_gt")
    _, _, ef = lv_summary(labels[0], labels[-1], case.spacing_mm)
    quality = (case.quality_bin or "medium").capitalize()
    (folder / "Info_4CH.cfg").write_text(
        f"ED: 1\nES: {len(idx)}\nNbFrame: {len(idx)}\nImageQuality: {quality}\nEF: {ef}\n"
        f"FrameRate: {case.frame_rate:.1f}\n")
    return folder


def patient_name(patient_number: int) -> str:
    """``patientNNNN``: the CAMUS folder name of a patient number."""
    return f"patient{patient_number:04d}"


def write_camus_split(root: Path, n_patients: int) -> Path:
    """Write ``root/database_split/subgroup_*.txt`` for patients 1..``n_patients``; returns the folder.

    Training, validation and testing as ``app.data.writers.official_split.official_part`` (the last ~20%
    test, ~10% validation before them); every file is written, an empty part as an empty file.
    """
    folder = Path(root) / SPLIT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[str, list[str]] = {part: [] for part in SPLIT_FILES}
    for number in range(1, n_patients + 1):
        names[official_part(number, n_patients, with_val=True)].append(patient_name(number))
    for part, file in SPLIT_FILES.items():
        (folder / file).write_text("".join(f"{name}\n" for name in names[part]))
    return folder
