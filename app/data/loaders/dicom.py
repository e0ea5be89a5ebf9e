"""Generic DICOM multi-frame (ultrasound or MR), with an optional label file beside it.

Frame rate from ``FrameTime`` (ms), ``FrameTimeVector``, ``CineRate`` or
``RecommendedDisplayFrameRate``; pixel spacing from ``SequenceOfUltrasoundRegions``
(``PhysicalDeltaX/Y``, in cm when the units code is 3) or ``PixelSpacing``. Labels are read from
``mask_path`` or, when not given, from ``<stem>_mask.npz`` (our writer) or ``<stem>_gt.nii(.gz)``
beside the file. No patient attribute is copied into the case: its id is the file name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from app.data.case import ECHO_MYO_LABELS, Case, DataError
from app.data.loaders.nifti import check_labels, read_nifti
from app.data.loaders.phantom_disk import read_npz

log = logging.getLogger(__name__)

ASSUMED_FRAME_RATE = 30.0


def is_dicom(path: Path) -> bool:
    """True for a file with the DICOM preamble magic (``DICM`` at byte 128) or a .dcm suffix."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _frame_rate(ds) -> tuple[float, bool]:
    if float(ds.get("FrameTime", 0) or 0) > 0:
        return 1000.0 / float(ds.FrameTime), False
    vector = ds.get("FrameTimeVector")
    if vector is not None and len(vector) > 1:
        steps = np.asarray([float(v) for v in vector[1:]])
        if np.all(steps > 0):
            return 1000.0 / float(steps.mean()), False
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        if float(ds.get(key, 0) or 0) > 0:
            return float(ds.get(key)), False
    return ASSUMED_FRAME_RATE, True


def _spacing(ds) -> tuple[float, float]:
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        r = regions[0]
        dx, dy = r.get("PhysicalDeltaX"), r.get("PhysicalDeltaY")
        if dx and dy:
            ux, uy = int(r.get("PhysicalUnitsXDirection", 3)), int(r.get("PhysicalUnitsYDirection", 3))
            sx = float(dx) * (10.0 if ux == 3 else 1.0)
            sy = float(dy) * (10.0 if uy == 3 else 1.0)
            return abs(sy), abs(sx)
    if "PixelSpacing" in ds:
        return float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])
    return float("nan"), float("nan")


def mask_beside(path: Path) -> Path | None:
    """The label file our writer (or a user) put beside a DICOM file, if any."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for name in (f"{stem}_mask.npz", f"{stem}_gt.nii.gz", f"{stem}_gt.nii"):
        if (path.parent / name).is_file():
            return path.parent / name
    return None


def load_dicom(path: Path, mask_path: Path | None = None) -> Case:
    """Read a (multi-frame) DICOM image into a ``Case``.

    Ultrasound comes back ``(T, H, W, 3)`` RGB or ``(T, H, W)`` grey (echo); MR as ``(T, 1, H, W)``
    float32 (cine, one slice).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    try:
        ds = pydicom.dcmread(str(path))
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DataError(path, f"not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DataError(path, "DICOM file has no pixel data")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for undecodable / truncated pixel data
        raise DataError(path, f"cannot decode the pixel data ({type(exc).__name__}: {exc})") from exc
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if n_frames == 1:
        pixels = pixels[None]
    modality = "cine" if str(ds.get("Modality", "")).upper() == "MR" else "echo"
    if modality == "cine":
        frames = pixels.astype(np.float32)[:, None]
    else:
        frames = pixels if samples == 3 else pixels.astype(np.uint8) if pixels.dtype != np.uint8 and pixels.max() <= 255 else pixels
    fps, assumed = _frame_rate(ds)
    spatial = frames.shape[:-1] if (modality == "echo" and samples == 3) else frames.shape
    labels, label_map, labelled, ed, es, extra = None, dict(ECHO_MYO_LABELS), (), None, None, {}
    mask_path = Path(mask_path) if mask_path is not None else mask_beside(path)
    if mask_path is not None:
        labels, label_map, labelled, ed, es, extra = _read_mask(mask_path, spatial)
    meta = {"sop_class_uid": str(ds.get("SOPClassUID", "")), "photometric": str(ds.get("PhotometricInterpretation", "")),
            "frame_rate_assumed": assumed, "mask": str(mask_path) if mask_path else None, **extra}
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    try:
        return Case(
            case_id=stem, modality=modality, frames=frames, labels=labels, label_map=label_map,
            spacing_mm=_spacing(ds), frame_rate=fps, labelled_frames=labelled, ed=ed, es=es,
            quality=extra.get("quality"), quality_bin=extra.get("quality_bin"), source=str(path), meta=meta,
        ).validate()
    except DataError as exc:
        raise DataError(mask_path or path, exc.problem) from exc


def _read_mask(mask_path: Path, spatial: tuple[int, ...]):
    """Labels for a DICOM file: ``(labels, label_map, labelled_frames, ed, es, extra)``."""
    if mask_path.name.endswith(".npz"):
        header, arrays = read_npz(mask_path)
        if "labels" not in arrays:
            raise DataError(mask_path, "mask file holds no labels")
        labels = arrays["labels"]
        label_map = {int(k): v for k, v in header["label_map"].items()}
        labelled = tuple(header.get("labelled_frames", range(labels.shape[0])))
        ed, es = header.get("ed"), header.get("es")
        extra = {"quality": header.get("quality"), "quality_bin": header.get("quality_bin"),
                 "phantom": header.get("meta", {}).get("acquisition") is not None}
    else:
        data, _, _ = read_nifti(mask_path)
        labels = np.transpose(data, (2, 1, 0)) if data.ndim == 3 else data.T[None]
        label_map, labelled, ed, es, extra = dict(ECHO_MYO_LABELS), tuple(range(labels.shape[0])), None, None, {}
        if labels.max(initial=0) > 1:
            from app.data.case import CAMUS_LABELS

            label_map = dict(CAMUS_LABELS)
    if len(spatial) == 4 and labels.ndim == 3:
        labels = labels[:, None]
    if tuple(labels.shape) != tuple(spatial):
        raise DataError(mask_path, f"label shape {labels.shape} does not match image shape {spatial}")
    labels = check_labels(mask_path, labels, tuple(label_map))
    return labels, label_map, labelled, ed, es, extra
