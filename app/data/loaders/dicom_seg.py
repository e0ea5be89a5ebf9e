"""DICOM Segmentation objects (SEG) over a multi-frame image: labels per source frame.

A SEG holds one binary (or fractional) plane per (segment, source frame). Each plane's
``PerFrameFunctionalGroupsSequence`` item names its segment
(``SegmentIdentificationSequence[0].ReferencedSegmentNumber``) and the frame of the image it was
drawn on (``DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber``, 1-based).
``read_dicom_seg`` turns that into one ``(T, H, W)`` uint8 label map with the segment numbers as
values and ``SegmentLabel`` as class names. Overlapping segments: the higher segment number wins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.data.case import DataError

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def is_dicom_seg(ds) -> bool:
    """True for a dataset whose SOP class is Segmentation Storage."""
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS


def _item(seq, path: Path, what: str):
    if not seq:
        raise DataError(path, f"a segmentation frame has no {what}")
    return seq[0]


def _source_frame(group, path: Path, index: int, n_frames: int) -> int:
    """0-based frame of the source image that plane ``index`` labels."""
    derivation = group.get("DerivationImageSequence")
    source = derivation[0].get("SourceImageSequence") if derivation else None
    number = source[0].get("ReferencedFrameNumber") if source else None
    if number is None:
        if n_frames == 1:
            return 0
        raise DataError(path, f"segmentation frame {index + 1} does not say which image frame it labels "
                              "(no DerivationImageSequence / SourceImageSequence / ReferencedFrameNumber)")
    number = int(number[0] if isinstance(number, (list, tuple)) or hasattr(number, "__len__") else number)
    if not 1 <= number <= n_frames:
        raise DataError(path, f"segmentation frame {index + 1} labels image frame {number}, outside 1..{n_frames}")
    return number - 1


def read_dicom_seg(path: Path, shape: tuple[int, int, int]) -> tuple[np.ndarray, dict[int, str], tuple[int, ...]]:
    """Labels of a SEG drawn on an image of ``shape = (T, H, W)``.

    Returns:
        ``(labels (T, H, W) uint8, label_map value -> name, labelled frames)``.

    Raises:
        DataError: not a SEG, a plane of another size, a segment number above 255, or a plane that
            does not name its image frame.
    """
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise DataError(path, f"unreadable DICOM SEG ({type(exc).__name__}: {exc})") from None
    if not is_dicom_seg(ds):
        raise DataError(path, "not a DICOM Segmentation (SOP class 1.2.840.10008.5.1.4.1.1.66.4)")
    t, h, w = (int(s) for s in shape)
    if (int(ds.Rows), int(ds.Columns)) != (h, w):
        raise DataError(path, f"segmentation planes are {ds.Rows}x{ds.Columns}, the image is {h}x{w}")
    label_map = {0: "background"}
    for seg in ds.get("SegmentSequence", []):
        number = int(seg.SegmentNumber)
        if not 1 <= number <= 255:
            raise DataError(path, f"segment number {number} outside 1..255")
        label_map[number] = str(seg.get("SegmentLabel", f"segment {number}"))
    planes = ds.pixel_array
    planes = planes[None] if planes.ndim == 2 else planes
    groups = ds.get("PerFrameFunctionalGroupsSequence", [])
    if len(groups) != planes.shape[0]:
        raise DataError(path, f"{planes.shape[0]} segmentation frames but {len(groups)} per-frame descriptions")
    fractional = str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    threshold = 0.5 * float(ds.get("MaximumFractionalValue", 255)) if fractional else 0.0
    order = sorted(range(len(groups)), key=lambda i: int(
        _item(groups[i].get("SegmentIdentificationSequence"), path, "segment number").ReferencedSegmentNumber))
    labels = np.zeros((t, h, w), np.uint8)
    labelled = set()
    for i in order:  # ascending segment number: the higher one wins where segments overlap
        number = int(groups[i].SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        if number not in label_map:
            raise DataError(path, f"segmentation frame {i + 1} refers to segment {number}, not in SegmentSequence")
        frame = _source_frame(groups[i], path, i, t)
        labels[frame][planes[i] > threshold] = number
        labelled.add(frame)
    return labels, label_map, tuple(sorted(labelled))
