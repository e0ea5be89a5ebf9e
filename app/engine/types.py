"""Data passed between frame sources, the pipeline, the viewer and the reports.

These are the contract between ``app.engine`` (producer) and ``app.viewer`` / replay reports
(consumers). Timestamps are ``time.perf_counter_ns()`` values (monotonic, nanoseconds).
End-to-end latency = ``t_overlay - t_arrival``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SourceInfo:
    """What a source says about itself before the first frame.

    Attributes:
        name: Human-readable, no patient identifiers (e.g. a file name, "phantom echo seed 0").
        modality: ``"echo"``, ``"cine"`` or None when unknown (a capture device).
        frame_rate: Frames per second the source delivers (pacing for replay), or None if live.
        n_frames: Total frames for a recording, None for a live stream.
        n_slices: Cine slices available (the user picks one), 1 otherwise.
        spacing_mm: Pixel spacing (row, col) when known.
        has_ground_truth: Whether frames carry ``ground_truth``.
        label_map: Label value -> class name for the ground truth.
        echo_attributes: What the source knows about how an echo recording was acquired, read
            once at open (``app.data.echo_mode``): DICOM contrast attributes (keyword -> text),
            and/or ``echo_mode`` with ``echo_mode_basis`` when the source knows it by construction
            (a phantom's variant, a B-mode dataset). Never patient identifiers.
    """

    name: str
    modality: str | None
    frame_rate: float | None
    n_frames: int | None = None
    n_slices: int = 1
    spacing_mm: tuple[float, float] | None = None
    has_ground_truth: bool = False
    label_map: dict[int, str] = field(default_factory=dict)
    echo_attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Frame:
    """One frame from a source.

    Attributes:
        index: Position in the source (0-based; for live sources, a running count).
        image: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8/float32 grey, as the source delivered it.
        t_arrival: perf_counter_ns when the frame arrived from the source.
        ground_truth: ``(H, W)`` uint8 label map aligned with ``image``, or None.
        meta: Source-specific extras (e.g. ``crop`` box, slice index).
    """

    index: int
    image: np.ndarray
    t_arrival: int
    ground_truth: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class FrameResult:
    """What the pipeline produced for one frame.

    Attributes:
        frame: The input frame (image as delivered).
        mask: ``(H, W)`` uint8 label map at the frame's resolution (newest frame of a cine clip):
            the argmax of the probabilities enlarged bilinearly to the frame (smooth edges).
        probabilities: ``(C, h, w)`` float32 at model resolution, or None when not kept.
        predicted_dice: QC network's estimate in [0, 1], or None without a QC model.
        true_dice: Dice against ground truth (mean over foreground classes present), or None.
        overlay: ``(H, W, 3)`` uint8 RGB composed image, or None when composition is off.
        timestamps: Stage name -> perf_counter_ns: ``arrival``, ``preprocessed``, ``segmented``,
            ``qc``, ``overlay`` (and ``painted`` set by the viewer).
        error: A message when this frame's inference failed (the pipeline goes on), else None.
    """

    frame: Frame
    mask: np.ndarray | None
    probabilities: np.ndarray | None = None
    predicted_dice: float | None = None
    true_dice: float | None = None
    overlay: np.ndarray | None = None
    timestamps: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def latency_ms(self) -> float | None:
        t0, t1 = self.timestamps.get("arrival"), self.timestamps.get("overlay")
        if t0 is None or t1 is None:
            return None
        return (t1 - t0) / 1e6

    def stage_ms(self) -> dict[str, float]:
        """Duration of each stage in ms: ``queue`` (arrival until the worker took the frame; in
        ``--fast`` mode a frame waits there by design), ``preprocess``, ``segment``, ``qc``, ``overlay``."""
        start = "started" if "started" in self.timestamps else "arrival"
        order = [("queue", "arrival", "started"), ("preprocess", start, "preprocessed"),
                 ("segment", "preprocessed", "segmented"), ("qc", "segmented", "qc"), ("overlay", "qc", "overlay")]
        out = {}
        for name, a, b in order:
            if a in self.timestamps and b in self.timestamps:
                out[name] = (self.timestamps[b] - self.timestamps[a]) / 1e6
        return out
