"""Echo cases -> the CAMUS 2019 MetaImage release layout (4-chamber view).

::

    training/patient0001/patient0001_4CH_sequence.mhd (+ .raw)   the whole sequence, (T, H, W)
    training/patient0001/patient0001_4CH_ED.mhd, _ED_gt.mhd, _ES.mhd, _ES_gt.mhd   (1, H, W)
    training/patient0001/Info_4CH.cfg    ED, ES, NbFrame, ImageQuality, LVedv, LVesv, LVef
    testing/patient0010/...              as above without the _gt files (the 2019 test set's labels
                                         were never released)

Every tenth patient goes to ``testing/``, the others to ``training/`` (the release: 450 / 50).
Images are grey uint8; labels uint8 0 bg, 1 LV, 2 MYO, 3 LA, as ``app.data.loaders.camus`` reads
them. Sex and Age are left out (the phantom has no demographics). ED/ES in ``Info_4CH.cfg`` are
1-based frame numbers of the sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.data.case import Case
from app.data.loaders.metaimage import write_metaimage
from app.data.writers.camus import _grey, lv_summary

TEST_EVERY = 10  # every tenth patient is in testing/ (450 / 50 in the release)


def camus2019_part(patient_number: int) -> str:
    """``"testing"`` for every tenth patient number, else ``"training"``."""
    return "testing" if patient_number % TEST_EVERY == 0 else "training"


def write_camus2019_patient(case: Case, root: Path, patient_number: int) -> Path:
    """Write echo ``case`` (CAMUS labels, ED and ES set) as ``root/<training|testing>/patientNNNN/``.

    Returns:
        The patient folder.
    """
    if case.modality != "echo" or case.labels is None or case.ed is None or case.es is None:
        raise ValueError(f"{case.case_id}: CAMUS needs an echo case with labels, ED and ES")
    name = f"patient{patient_number:04d}"
    part = camus2019_part(patient_number)
    folder = Path(root) / part / name
    folder.mkdir(parents=True, exist_ok=True)
    frames, labels = _grey(case.frames), case.labels.astype(np.uint8)
    spacing = (float(case.spacing_mm[1]), float(case.spacing_mm[0]), 1.0)  # MetaImage: x (col), y (row), t

    def save(arr: np.ndarray, stem: str) -> None:  # the sequence 3D (W H T), the ED/ES frames 2D (W H)
        write_metaimage(folder / f"{name}_4CH_{stem}.mhd", np.ascontiguousarray(arr), spacing[: arr.ndim])

    save(frames, "sequence")
    for tag, idx in (("ED", case.ed), ("ES", case.es)):
        save(frames[idx], tag)
        if part == "training":
            save(labels[idx], f"{tag}_gt")
    edv, esv, ef = lv_summary(labels[case.ed], labels[case.es], case.spacing_mm)
    quality = (case.quality_bin or "medium").capitalize()
    (folder / "Info_4CH.cfg").write_text(
        f"ED: {case.ed + 1}\nES: {case.es + 1}\nNbFrame: {case.n_frames}\nImageQuality: {quality}\n"
        f"LVedv: {edv:.2f}\nLVesv: {esv:.2f}\nLVef: {ef}\n")
    return folder
