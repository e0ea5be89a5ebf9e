"""Loaders for real datasets and our own files, all returning ``app.data.case.Case``.

``load_case(path)`` opens one case from whatever ``path`` is:

- a DICOM file (``.dcm`` or DICOM magic): ``dicom.load_dicom`` (labels from a file beside it);
- a ``.npz`` case file: ``phantom_disk.load_case_npz``;
- an ACDC patient folder (``Info.cfg`` + ``*_4d.nii.gz``) or a file in it: ``acdc.load_acdc_patient``;
- a CAMUS patient folder (``Info_4CH.cfg`` / ``*_4CH_ED.*``) or a file in it: ``camus.load_camus_patient``;
- an EchoNet-Dynamic ``.avi`` inside ``Videos/`` of a folder with ``FileList.csv``: ``echonet``.

``load_dataset(path)`` opens every case of a dataset folder (ACDC ``training/``, a CAMUS root, an
EchoNet root, a folder written by ``python -m app phantom``); a root holding ``training/`` and
``testing/`` (ACDC, CAMUS 2019, the ``acdc`` phantom) gives the patients of both, in name order.
"""

from __future__ import annotations

from pathlib import Path

from app.data.case import Case, DataError


def load_case(path: Path | str) -> Case:
    """Open one case, choosing the reader from what ``path`` is (see the module docstring)."""
    from app.data.loaders import acdc, camus, dicom, echonet, phantom_disk

    path = Path(path)
    if not path.exists():
        raise DataError(path, "missing file")
    if path.is_dir():
        if acdc.is_acdc_patient(path):
            return acdc.load_acdc_patient(path)
        if camus.is_camus_patient(path):
            return camus.load_camus_patient(path)
        raise DataError(path, _folder_problem(path))
    name = path.name.lower()
    if name.endswith(".npz"):
        return phantom_disk.load_case_npz(path)
    if name.endswith(".avi"):
        root = path.parent.parent if path.parent.name == "Videos" else path.parent
        return echonet.EchoNetDataset(root).load(path.stem)
    if name.endswith((".nii", ".nii.gz", ".mhd", ".cfg", ".raw")):
        if acdc.is_acdc_patient(path.parent):
            return acdc.load_acdc_patient(path.parent)
        if camus.is_camus_patient(path.parent):
            view = "2CH" if "_2CH" in path.name else "4CH"
            return camus.load_camus_patient(path.parent, view)
        raise DataError(path, "not inside an ACDC or CAMUS patient folder")
    if dicom.is_dicom(path):
        return dicom.load_dicom(path)
    raise DataError(path, "unknown file type (expected DICOM, .npz, NIfTI/MetaImage in a patient folder, or .avi)")


def _folder_problem(folder: Path) -> str:
    """Why ``folder`` is not one case, in words for the person who chose it."""
    four_d = sorted(folder.glob("*_4d.nii*"))
    four_d = [p for p in four_d if "_gt." not in p.name]
    if four_d and not (folder / "Info.cfg").is_file():
        return (f"ACDC patient folder without Info.cfg: the folder needs Info.cfg (its ED: and ES: frame "
                f"numbers), {four_d[0].name} and the patientXXX_frameNN_gt.nii.gz labels; to replay the "
                f"cine without ground truth, give the 4D file itself ({four_d[0]})")
    patients = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("patient")]
    if (folder / "FileList.csv").exists() or _dicoms(folder) or patients:
        what = f"{len(patients)} patient folders" if patients else "FileList.csv" if (
            folder / "FileList.csv").exists() else f"{len(_dicoms(folder))} DICOM files"
        return f"is a dataset folder ({what}), not one case: give one patient folder or one file in it"
    return ("holds no recording this app can open: expected images (PNG/JPEG/BMP/TIFF), an ACDC patient "
            "(Info.cfg + patientXXX_4d.nii.gz) or a CAMUS patient (Info_4CH.cfg / *_4CH_ED.nii.gz)")


def _dicoms(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.dcm") if p.is_file())


def load_dataset(path: Path | str) -> list[Case]:
    """Every case of a dataset folder, in name order."""
    from app.data.loaders import acdc, camus, echonet

    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "missing dataset folder")
    if (path / "FileList.csv").exists():
        return echonet.load_echonet(path)
    patients = sorted(p for p in path.iterdir() if p.is_dir() and p.name.startswith("patient"))
    if not patients:  # the official split's folders (ACDC, CAMUS 2019): their patients, by name
        patients = sorted((p for sub in ("training", "testing") if (path / sub).is_dir()
                           for p in (path / sub).iterdir() if p.is_dir() and p.name.startswith("patient")),
                          key=lambda p: p.name)
    if patients:
        if acdc.is_acdc_patient(patients[0]):
            return [acdc.load_acdc_patient(p) for p in patients]
        return [camus.load_camus_patient(p) for p in patients]
    files = _dicoms(path) or sorted(p for p in path.glob("case_*.npz"))
    if files:
        return [load_case(p) for p in files]
    raise DataError(path, "no cases found (no patient folders, FileList.csv, .dcm or case_*.npz files)")


__all__ = ["load_case", "load_dataset"]
