"""Echo case -> DICOM Ultrasound Multi-frame Image, labels in ``<stem>_mask.npz`` beside it.

The file carries what a scanner's export carries for replay: ``FrameTime`` (ms), ``CineRate``, and
one ``SequenceOfUltrasoundRegions`` item with the sector's bounds and ``PhysicalDeltaX/Y`` in cm. A
contrast phantom also carries the Contrast/Bolus Module (``ContrastBolusAgent``, ``ContrastBolusRoute``),
as the US IODs require when contrast media was used, so readers (``app.data.echo_mode``) can tell
contrast echo from B-mode without looking at the pixels; a B-mode phantom has no such module.
Identity is anonymous by construction: ``PatientName = PHANTOM^<n>``, ``PatientID = PHANTOM-<n>``,
empty birth date and sex; UIDs are derived from the case id, so rewriting a case gives the same
file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.data.case import Case
from app.data.loaders.phantom_disk import save_case_npz

FRAME_TIME_TAG = 0x00181063
CONTRAST_AGENT = "microbubbles (phantom)"  # ContrastBolusAgent of contrast phantoms (LO, at most 64 characters)


def _uid(*parts: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["cardiac-rt-phantom", *parts])


def write_echo_dicom(case: Case, path: Path, patient_number: int, *, deflate: bool = True) -> Path:
    """Write ``case`` (echo, ``(T, H, W, 3)`` RGB or ``(T, H, W)`` grey uint8) to ``path``.

    Args:
        case: An echo case.
        path: Output ``.dcm``; the labels go to ``<stem>_mask.npz`` beside it.
        patient_number: Shown as ``PHANTOM^<n>``.
        deflate: Use the Deflated Explicit VR Little Endian transfer syntax (lossless, smaller).

    Returns:
        The DICOM path.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage

    if case.modality != "echo":
        raise ValueError(f"write_echo_dicom needs an echo case, got {case.modality}")
    frames = np.ascontiguousarray(case.frames, dtype=np.uint8)
    if frames.ndim not in (3, 4):
        raise ValueError(f"echo frames must be (T, H, W[, 3]), got {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w = frames.shape[:3]
    colour = frames.ndim == 4

    sop_uid = _uid(case.case_id, "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflate else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = _uid(case.case_id, "study")
    ds.SeriesInstanceUID = _uid(case.case_id, "series")
    ds.Modality = "US"
    ds.PatientName = f"PHANTOM^{patient_number:04d}"
    ds.PatientID = f"PHANTOM-{patient_number:04d}"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "cardiac-rt phantom"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = f"synthetic {case.source or 'echo'}; quality {case.quality if case.quality is not None else 'unknown'}"
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = t
    ds.FrameTime = f"{1000.0 / case.frame_rate:.4f}"
    ds.FrameIncrementPointer = FRAME_TIME_TAG
    ds.CineRate = int(round(case.frame_rate))
    ds.RecommendedDisplayFrameRate = int(round(case.frame_rate))
    ds.LossyImageCompression = "00"
    if case.meta.get("variant") == "contrast":  # the Contrast/Bolus Module (PS3.3 C.7.6.4)
        ds.ContrastBolusAgent = CONTRAST_AGENT
        ds.ContrastBolusRoute = "IV"

    sector = case.meta.get("sector", {})
    region = Dataset()
    region.RegionSpatialFormat = 1   # 2D
    region.RegionDataType = 1        # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = w - 1, h - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = float(case.spacing_mm[1]) / 10.0
    region.PhysicalDeltaY = float(case.spacing_mm[0]) / 10.0
    if sector:
        region.ReferencePixelX0 = int(round(sector["apex_col_px"]))
        region.ReferencePixelY0 = int(round(sector["apex_row_px"]))
    ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = frames.tobytes()

    ds.save_as(str(path), implicit_vr=False, little_endian=True, enforce_file_format=True)
    if case.labels is not None:
        save_case_npz(case, path.with_name(f"{path.stem}_mask.npz"), with_frames=False)
    return path
