"""Generic DICOM multi-frame (ultrasound or MR), with an optional label file beside it.

Frame rate from ``FrameTime`` (ms), ``FrameTimeVector``, ``CineRate`` or
``RecommendedDisplayFrameRate`` (implausible values replaced, with a warning); pixel spacing from ``SequenceOfUltrasoundRegions``
(``PhysicalDeltaX/Y``, in cm when the units code is 3) or ``PixelSpacing``. Labels are read from
``mask_path`` or, when not given, from ``<stem>_mask.npz`` (our writer) or ``<stem>_gt.nii(.gz)``
beside the file. No patient attribute is copied into the case: its id is the file name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from app.data.case import ECHO_MYO_LABELS, Case, DataError
from app.data.echo_mode import contrast_attributes
from app.data.loaders.dicom_read import (DicomData, check_modality, decode_frame, dicom_frame_rate, header_errors,
                                         read_dicom)
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


def _spacing(ds, path: Path) -> tuple[float, float]:
    try:
        return _spacing_values(ds)
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        log.warning("%s: ignoring a broken pixel spacing (%s: %s)", path, type(exc).__name__, exc)
        return float("nan"), float("nan")


def _spacing_values(ds) -> tuple[float, float]:
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


def load_dicom(path: Path, mask_path: Path | None = None, *, force: bool = False) -> Case:
    """Read a (multi-frame) DICOM image into a ``Case``.

    Ultrasound comes back ``(T, H, W, 3)`` RGB or ``(T, H, W)`` grey (echo); MR as ``(T, 1, H, W)``
    float32 (cine, one slice). Other modalities (CT, single-frame MR, ...) raise ``DataError``
    unless ``force``. A truncated file, or one with a corrupt frame, gives the frames before the
    damage with a warning; ``meta["partial"]`` then says what is missing.
    """
    path = Path(path)
    data = read_dicom(path)
    ds = data.ds
    with header_errors(path):
        modality = check_modality(path, ds, data.n_frames, force=force) or "echo"
        samples = int(ds.get("SamplesPerPixel", 1))
        fps, assumed = dicom_frame_rate(ds, path, ASSUMED_FRAME_RATE)
        spacing = _spacing(ds, path)
        header = {"sop_class_uid": str(ds.get("SOPClassUID", "")),
                  "photometric": str(ds.get("PhotometricInterpretation", ""))}
        if modality == "echo":  # contrast or B-mode (app.data.echo_mode): the contrast attributes it carries
            header["echo_attributes"] = contrast_attributes(ds)
    pixels, partial = _decode_all(path, data)
    if partial:
        log.warning("%s: %s; keeping the frames before it", path, partial)
    if modality == "cine":
        frames = pixels.astype(np.float32)[:, None]
    else:
        frames = pixels if samples == 3 else pixels.astype(np.uint8) if pixels.dtype != np.uint8 and pixels.max() <= 255 else pixels
    spatial = frames.shape[:-1] if (modality == "echo" and samples == 3) else frames.shape
    labels, label_map, labelled, ed, es, extra = None, dict(ECHO_MYO_LABELS), (), None, None, {}
    mask_path = Path(mask_path) if mask_path is not None else mask_beside(path)
    if mask_path is not None:
        declared = (data.n_declared, *spatial[1:])  # the mask covers the frames the file should hold
        labels, label_map, labelled, ed, es, extra = _read_mask(mask_path, declared)
        labels, labelled = labels[: frames.shape[0]], tuple(i for i in labelled if i < frames.shape[0])
        ed, es = (None if i is None or i >= frames.shape[0] else i for i in (ed, es))
    meta = {**header, "frame_rate_assumed": assumed, "mask": str(mask_path) if mask_path else None, "partial": partial, **extra}
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    try:
        return Case(
            case_id=stem, modality=modality, frames=frames, labels=labels, label_map=label_map,
            spacing_mm=spacing, frame_rate=fps, labelled_frames=labelled, ed=ed, es=es,
            quality=extra.get("quality"), quality_bin=extra.get("quality_bin"), source=str(path), meta=meta,
        ).validate()
    except DataError as exc:
        raise DataError(mask_path or path, exc.problem) from exc


def _decode_all(path: Path, data: DicomData) -> tuple[np.ndarray, str | None]:
    """Every readable frame stacked, and what is missing (truncation, a corrupt frame) or None."""
    frames = []
    partial = data.note
    for index in range(data.n_frames):
        try:
            frames.append(decode_frame(data, index, path))
        except DataError as exc:
            if index == 0:
                raise
            partial = exc.problem
            break
    try:
        return np.stack(frames), partial
    except ValueError:
        raise DataError(path, f"frames of different shapes ({frames[0].shape}, ...)") from None


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
