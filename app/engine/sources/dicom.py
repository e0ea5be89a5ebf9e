"""DICOM multi-frame recordings (echo cine loops, grey MR), decoded one frame at a time.

Handles JPEG baseline (Pillow), RLE, uncompressed; palette colour and YBR are converted to RGB;
pacing comes from FrameTime (ms) or CineRate / RecommendedDisplayFrameRate (implausible values are
replaced, with a warning); US opens as echo, a multi-frame MR as cine, other modalities, and a file
whose content contradicts its Modality tag (an echo loop relabelled MR), only with ``force``; a truncated file plays its complete frames and then ends as ``PartialSource``; the ultrasound
region from SequenceOfUltrasoundRegions crops away the scanner's text and rulers and gives the
pixel spacing; an echo file's contrast attributes (``app.data.echo_mode.contrast_attributes``) go to
``SourceInfo.echo_attributes``. Bad files give one ``DataError`` naming the file and the problem. Patient
identifiers in the file are never read into ``SourceInfo`` or frame metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from app.data.case import DataError
from app.data.echo_mode import contrast_attributes
from app.data.frame_rate import default_fps
from app.data.loaders.dicom_read import (check_modality, decode_frame, dicom_frame_rate, header_errors, quiet_pydicom,
                                         read_dicom, short_reason)
from app.engine.sources.base import RecordingSource
from app.engine.types import SourceInfo

log = logging.getLogger(__name__)

# PhysicalUnits{X,Y}Direction code -> millimetres per unit (3 = cm, 4 = seconds, ... not spatial).
_UNIT_MM = {3: 10.0}


def is_dicom(path: Path) -> bool:
    """True for files with the DICM preamble or a ``.dcm`` suffix."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _check_decodable(path: Path, ds) -> None:
    from pydicom.pixels import get_decoder

    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None:
        raise DataError(path, "has no transfer syntax in its file meta, cannot decode pixel data")
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise DataError(path, f"unsupported transfer syntax {ts} ({ts.name}): no decoder for it") from None
    if not decoder.is_available:
        raise DataError(
            path, f"unsupported transfer syntax {ts} ({ts.name}): no installed decoder plugin "
                  "(needs e.g. pylibjpeg or GDCM, not part of this app)")


def ultrasound_region(ds, rows: int, cols: int) -> tuple[tuple[int, int, int, int] | None, tuple[float, float] | None]:
    """The largest 2D region of SequenceOfUltrasoundRegions: crop box ``(y0, y1, x0, x1)`` and spacing (mm)."""
    regions = ds.get("SequenceOfUltrasoundRegions")
    if not regions:
        return None, None
    best, best_area = None, 0
    for region in regions:
        if int(region.get("RegionSpatialFormat", 0)) != 1:  # 1 = 2D tissue or colour flow
            continue
        x0, y0 = int(region.RegionLocationMinX0), int(region.RegionLocationMinY0)
        x1, y1 = int(region.RegionLocationMaxX1), int(region.RegionLocationMaxY1)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(cols - 1, x1), min(rows - 1, y1)
        area = (x1 - x0 + 1) * (y1 - y0 + 1)
        if x1 > x0 and y1 > y0 and area > best_area:
            best, best_area = region, area
            box = (y0, y1 + 1, x0, x1 + 1)
    if best is None:
        return None, None
    spacing = None
    ux, uy = int(best.get("PhysicalUnitsXDirection", 0)), int(best.get("PhysicalUnitsYDirection", 0))
    if ux in _UNIT_MM and uy in _UNIT_MM:
        spacing = (abs(float(best.PhysicalDeltaY)) * _UNIT_MM[uy], abs(float(best.PhysicalDeltaX)) * _UNIT_MM[ux])
    return box, spacing


class DicomSource(RecordingSource):
    """A DICOM image (single or multi-frame), one frame decoded per step.

    Args:
        path: The ``.dcm`` file.
        crop: Crop each frame to the ultrasound region when the file describes one.
        labels: Optional ground truth ``(T, H, W)`` uint8 in the *uncropped* frame geometry
            (e.g. masks written beside a phantom DICOM); cropped along with the image.
        label_map: Class names of ``labels``.
        labelled_frames: Frames whose labels are ground truth (None = all).
    """

    def __init__(self, path: Path | str, *, crop: bool = True, labels: np.ndarray | None = None,
                 label_map: dict[int, str] | None = None, labelled_frames: tuple[int, ...] | None = None,
                 force: bool = False):
        self.path = Path(path)
        data = read_dicom(self.path)
        ds = data.ds
        with header_errors(self.path):
            _check_decodable(self.path, ds)
            modality = check_modality(self.path, ds, data.n_frames, force=force)
            rows, cols = int(ds.Rows), int(ds.Columns)
            box, spacing = _geometry(self.path, ds, rows, cols, crop)
            self._palette = str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR"
            fps, _ = dicom_frame_rate(ds, self.path, default_fps(modality))
        echo_attributes = contrast_attributes(ds) if modality == "echo" else {}
        self._data = data
        n = data.n_frames
        self._box = box
        if labels is not None and labels.shape[1:] == (rows, cols) and labels.shape[0] != n:
            labels, labelled_frames = _fit_labels(labels, labelled_frames, n, data.n_declared)
        if labels is not None and (labels.shape[0] != n or labels.shape[1:] != (rows, cols)):
            raise DataError(self.path, f"ground truth shape {labels.shape} does not match the frames ({n}, {rows}, {cols})")
        self._labels = labels
        self._labelled = None if labelled_frames is None else frozenset(int(i) for i in labelled_frames)
        super().__init__(SourceInfo(
            name=self.path.name, modality=modality, frame_rate=fps, n_frames=n,
            spacing_mm=spacing, has_ground_truth=labels is not None,
            label_map=dict(label_map or {}), echo_attributes=echo_attributes,
        ))
        self.read_frame(0)  # decode once now, so a broken file fails at open with its name
        if data.note:
            self.mark_partial(self.path, data.note)

    def read_frame(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        from pydicom.pixels import apply_color_lut

        arr = decode_frame(self._data, index, self.path)
        if self._palette:
            try:
                with quiet_pydicom():
                    arr = apply_color_lut(arr, self._data.ds)
            except Exception as exc:  # a broken palette: the same one-line error as a broken frame
                raise DataError(self.path, f"frame {index}: could not be decoded (palette: {short_reason(exc)})") from None
        image = _to_display(arr)
        gt = None
        if self._labels is not None and (self._labelled is None or index in self._labelled):
            gt = self._labels[index]
        if self._box is not None:
            y0, y1, x0, x1 = self._box
            image = image[y0:y1, x0:x1]
            gt = None if gt is None else gt[y0:y1, x0:x1]
        return np.ascontiguousarray(image), None if gt is None else np.ascontiguousarray(gt, dtype=np.uint8)


def _geometry(path: Path, ds, rows: int, cols: int, crop: bool):
    """Crop box and pixel spacing; a broken region or spacing is ignored with a warning."""
    box, spacing = None, None
    try:
        box, spacing = ultrasound_region(ds, rows, cols) if crop else (None, None)
    except Exception as exc:  # a corrupt region sequence: show the whole frame
        log.warning("%s: ignoring a broken ultrasound region (%s: %s)", path, type(exc).__name__, short_reason(exc))
    if spacing is None and ds.get("PixelSpacing"):
        try:
            spacing = (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
        except (TypeError, ValueError, IndexError) as exc:
            log.warning("%s: ignoring a broken PixelSpacing (%s)", path, short_reason(exc))
    return box, spacing


def _fit_labels(labels: np.ndarray, labelled: tuple[int, ...] | None, n: int,
                declared: int) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Ground truth for the ``n`` readable frames of a damaged file (unchanged when it fits neither)."""
    k = labels.shape[0]
    if k == declared and k > n:  # a truncated file: the labels of the frames that remain
        keep = labels[:n]
    elif k < n:  # the loader stopped at a corrupt frame: those after it carry no ground truth
        keep = np.zeros((n, *labels.shape[1:]), labels.dtype)
        keep[:k] = labels
    else:
        return labels, labelled
    listed = range(k) if labelled is None else labelled
    return keep, tuple(i for i in listed if i < min(k, n))


def _to_display(arr: np.ndarray) -> np.ndarray:
    """Decoded pixels -> uint8 RGB ``(H, W, 3)``, uint8 grey, or float32 grey (>8-bit data)."""
    if arr.ndim == 3 and arr.shape[-1] == 3:
        if arr.dtype == np.uint8:
            return arr
        # 16-bit colour (palette LUTs are 16-bit): keep the top byte.
        top = float(arr.max()) if arr.size else 0.0
        shift = 8 if top > 255 else 0
        return (arr >> shift).astype(np.uint8) if arr.dtype.kind == "u" else np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return arr if arr.dtype == np.uint8 else arr.astype(np.float32)
    raise ValueError(f"unexpected decoded pixel shape {arr.shape}")
