"""Labels -> a DICOM Segmentation (SEG, binary) over a multi-frame DICOM image already on disk.

One plane per (segment, labelled frame), each naming its segment and its source frame, as
``app.data.loaders.dicom_seg`` reads it. Identity attributes are copied from the source image
(the phantom's are anonymous by construction); UIDs are derived from the source's SOP instance UID,
so rewriting gives the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from app.data.loaders.dicom_seg import SEG_SOP_CLASS


def write_dicom_seg(labels: np.ndarray, label_map: Mapping[int, str], labelled_frames: Sequence[int],
                    source: Path, path: Path) -> Path:
    """Write ``labels`` (``(T, H, W)`` uint8) of ``source`` (a multi-frame DICOM) as a SEG at ``path``.

    Args:
        labels: Label values per frame of the source image.
        label_map: Value -> class name; every non-zero value becomes a segment of that number.
        labelled_frames: 0-based frames that carry ground truth (only they get planes).
        source: The image the labels were drawn on.
        path: Output ``.dcm``.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import pack_bits
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    src = pydicom.dcmread(str(source), stop_before_pixels=True)
    segments = sorted(int(v) for v in label_map if int(v) != 0)
    uid = str(src.SOPInstanceUID)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SEG_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid, "seg"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SEG_SOP_CLASS, meta.MediaStorageSOPInstanceUID
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, key, src.get(key, ""))
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid, "seg-series"])
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "SEG", 100, 1
    ds.Manufacturer = "cardiac-rt"
    ds.SegmentationType = "BINARY"
    ds.ContentLabel = "LABELS"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.Rows, ds.Columns = int(labels.shape[1]), int(labels.shape[2])
    ds.LossyImageCompression = "00"
    ds.SegmentSequence = []
    for number in segments:
        item = Dataset()
        item.SegmentNumber, item.SegmentLabel = number, str(label_map[number])
        item.SegmentAlgorithmType = "MANUAL"
        ds.SegmentSequence.append(item)
    ref = Dataset()
    ref.SeriesInstanceUID = src.SeriesInstanceUID
    inst = Dataset()
    inst.ReferencedSOPClassUID, inst.ReferencedSOPInstanceUID = src.SOPClassUID, uid
    ref.ReferencedInstanceSequence = [inst]
    ds.ReferencedSeriesSequence = [ref]
    planes, groups = [], []
    for number in segments:
        for frame in labelled_frames:
            planes.append(labels[frame] == number)
            group = Dataset()
            ident = Dataset()
            ident.ReferencedSegmentNumber = number
            group.SegmentIdentificationSequence = [ident]
            source_item = Dataset()
            source_item.ReferencedSOPClassUID, source_item.ReferencedSOPInstanceUID = src.SOPClassUID, uid
            source_item.ReferencedFrameNumber = int(frame) + 1
            derivation = Dataset()
            derivation.SourceImageSequence = [source_item]
            group.DerivationImageSequence = [derivation]
            groups.append(group)
    ds.NumberOfFrames = len(planes)
    ds.PerFrameFunctionalGroupsSequence = groups
    ds.PixelData = pack_bits(np.stack(planes).astype(np.uint8))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path
