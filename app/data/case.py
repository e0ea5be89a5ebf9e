"""The one case type every loader returns and every consumer reads.

A *case* is one patient's 2D+t sequence (echo) or stack of 2D+t slices (cine MR), with its labels
where known. Loaders for ACDC, CAMUS, EchoNet-Dynamic, generic DICOM and our phantoms all return
``Case``; training code, the replay engine and the validation reports read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

import numpy as np

Modality = Literal["echo", "cine"]

ECHO_MYO_LABELS: Mapping[int, str] = {0: "background", 1: "myocardium"}
CAMUS_LABELS: Mapping[int, str] = {0: "background", 1: "LV", 2: "MYO", 3: "LA"}
ACDC_LABELS: Mapping[int, str] = {0: "background", 1: "RV", 2: "MYO", 3: "LV"}


class DataError(ValueError):
    """Bad input data. The message always names the file and the problem."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class Case:
    """One patient's sequence with its labels.

    Attributes:
        case_id: Anonymous identifier (never a patient name or ID from the source files).
        modality: ``"echo"`` or ``"cine"``.
        frames: Image data. Echo: ``(T, H, W, 3)`` uint8 RGB as displayed, or ``(T, H, W)`` uint8
            grey. Cine: ``(T, Z, H, W)`` float32 (Z short-axis slices, base to apex).
        labels: Integer label maps, uint8, the shape of ``frames`` without the colour axis, or None.
            Only the frames listed in ``labelled_frames`` carry ground truth; others are 0.
        labelled_frames: Indices (0-based, along T) of the frames that have ground truth.
        label_map: Label value -> class name (``ACDC_LABELS``, ``CAMUS_LABELS``, ...).
        spacing_mm: Pixel spacing (row, column) in millimetres.
        frame_rate: Frames per second.
        ed: End-diastole frame index (0-based), or None when unknown.
        es: End-systole frame index (0-based), or None when unknown.
        quality: Acquisition quality in [0, 1] (1 = perfect), or None when unknown.
        quality_bin: ``"good"``, ``"medium"``, ``"poor"``, or None.
        source: Where the case came from (``"phantom-echo"``, ``"acdc"``, a file path, ...).
        meta: Anything else a loader wants to keep (no patient identifiers).
    """

    case_id: str
    modality: Modality
    frames: np.ndarray
    labels: np.ndarray | None
    label_map: Mapping[int, str]
    spacing_mm: tuple[float, float]
    frame_rate: float
    labelled_frames: tuple[int, ...] = ()
    ed: int | None = None
    es: int | None = None
    quality: float | None = None
    quality_bin: str | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def is_colour(self) -> bool:
        return self.modality == "echo" and self.frames.ndim == 4 and self.frames.shape[-1] == 3

    @property
    def n_slices(self) -> int:
        """Number of short-axis slices (cine), 1 for echo."""
        return int(self.frames.shape[1]) if self.modality == "cine" else 1

    def validate(self) -> "Case":
        """Check shapes, dtypes and label values; raise ``DataError`` naming the case on failure."""
        where = self.source or self.case_id
        if self.modality not in ("echo", "cine"):
            raise DataError(where, f"unknown modality {self.modality!r}")
        expected_ndim = {"echo": (3, 4), "cine": (4,)}[self.modality]
        if self.frames.ndim not in expected_ndim:
            raise DataError(where, f"{self.modality} frames must have {expected_ndim} dims, got shape {self.frames.shape}")
        if self.labels is not None:
            spatial = self.frames.shape[:-1] if self.is_colour else self.frames.shape
            if tuple(self.labels.shape) != tuple(spatial):
                raise DataError(where, f"label shape {self.labels.shape} does not match image shape {spatial}")
            known = np.fromiter(self.label_map.keys(), dtype=np.int64)
            found = np.unique(self.labels)
            unknown = np.setdiff1d(found, known)
            if unknown.size:
                raise DataError(where, f"labels outside the known values {sorted(known.tolist())}: {unknown.tolist()}")
        for idx in self.labelled_frames:
            if not 0 <= idx < self.n_frames:
                raise DataError(where, f"labelled frame {idx} outside 0..{self.n_frames - 1}")
        return self
