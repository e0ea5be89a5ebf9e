"""NIfTI reading with one clear error per bad file (missing, truncated, not NIfTI)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from app.data.case import DataError


def read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, ...], str]:
    """Read a ``.nii`` / ``.nii.gz``.

    Returns:
        ``(data, zooms, time_unit)``: the array in the file's axis order (x, y, z[, t]), the voxel
        sizes per axis and the header's time unit (``"sec"``, ``"msec"``, ``"usec"`` or ``"unknown"``).
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise DataError(path, f"truncated or corrupt NIfTI ({type(exc).__name__}: {_one_line(exc, path)})") from exc
    except nib.filebasedimages.ImageFileError as exc:
        raise DataError(path, f"not a NIfTI file ({_one_line(exc, path)})") from exc
    zooms = tuple(float(z) for z in img.header.get_zooms())
    _, t_unit = img.header.get_xyzt_units()
    return data, zooms, str(t_unit)


def _one_line(exc: BaseException, path: Path) -> str:
    """The library's message on one line, without repeating the path (the error already names it)."""
    text = " ".join(str(exc).replace(str(path), "the file").split())
    return text.replace(" from the file - ", "; ").replace(" from the file", "")


def write_nifti(path: Path, data: np.ndarray, zooms: tuple[float, ...], time_unit: str | None = None) -> Path:
    """Write ``data`` (x, y, z[, t]) with a diagonal affine from ``zooms``."""
    import nibabel as nib

    path = Path(path)
    affine = np.diag([*[float(z) for z in zooms[:3]], *([1.0] * (3 - min(3, len(zooms)))), 1.0])
    img = nib.Nifti1Image(data, affine)
    full = [float(z) for z in zooms[: data.ndim]] + [1.0] * max(0, data.ndim - len(zooms))
    img.header.set_zooms(tuple(full))
    img.header.set_xyzt_units("mm", time_unit or "unknown")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def check_labels(path: Path, labels: np.ndarray, known: tuple[int, ...]) -> np.ndarray:
    """Return ``labels`` as uint8, or ``DataError`` naming ``path`` if a value is not in ``known``."""
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError(path, "label map holds non-integer values")
    found = np.unique(labels)
    unknown = np.setdiff1d(found, np.asarray(known))
    if unknown.size:
        raise DataError(path, f"labels outside the known values {list(known)}: {unknown.astype(int).tolist()}")
    return labels.astype(np.uint8)
