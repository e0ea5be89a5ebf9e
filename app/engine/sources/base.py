"""The frame-source interface and the recording base class shared by every file-backed source.

A source yields ``Frame`` objects as fast as they decode (pacing is the ``Player``'s job); each
frame's ``t_arrival`` is stamped (``time.perf_counter_ns``) when it is handed out. Recordings are
seekable; live sources block until their next frame and end when closed or disconnected.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from typing import Iterator

import numpy as np

from app.data.case import DataError
from app.data.frame_rate import checked_fps, default_fps, describe, is_plausible
from app.engine.types import Frame, SourceInfo

log = logging.getLogger(__name__)


class EndOfRecording(Exception):
    """Raised by ``RecordingSource.read_frame`` when a file holds fewer frames than announced."""


class PartialSource(DataError):
    """A recording that could be read only in part (truncated file, corrupt frame).

    Raised by iteration after the last readable frame, so a replay processes those frames and then
    reports the source as failed part-way (the player's ``on_error``: replay exit status 1).
    """


class FrameSource(abc.ABC):
    """One stream of frames with what it knows about itself (``info``)."""

    info: SourceInfo
    seekable: bool = False

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Frames in order, as fast as they decode; ``t_arrival`` set when handed out."""

    def seek(self, index: int) -> None:
        """Recordings: the next iteration starts at ``index``. Live sources raise ``ValueError``."""
        raise ValueError(f"{self.info.name}: a live source cannot seek")

    def set_slice(self, z: int) -> None:
        """Cine: choose the short-axis slice. Other sources raise ``ValueError``."""
        raise ValueError(f"{self.info.name}: this source has no slices to choose from")

    def close(self) -> None:
        """Release files/devices/sockets; idempotent."""
        return None

    def preview_frames(self, n: int) -> list[np.ndarray]:
        """Up to ``n`` images spread over the source, read without disturbing playback (for
        ``app.engine.sources.echo_mode_of``). A live source has none before it plays: ``[]``."""
        return []

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordingSource(FrameSource):
    """A seekable recording of ``info.n_frames`` frames read by index.

    Subclasses implement ``read_frame(index) -> (image, ground_truth | None)``. Iteration starts at
    the current position (0, or wherever ``seek`` put it) and runs to the end; ``seek`` during an
    iteration makes the next frame come from the new index. Cine recordings with several slices
    override ``set_slice``.
    """

    seekable = True

    def __init__(self, info: SourceInfo):
        if info.frame_rate is not None and not is_plausible(info.frame_rate):
            info.frame_rate = checked_fps(info.name, info.frame_rate, f"frame rate {describe(info.frame_rate)}",
                                          default_fps(info.modality))
        self.info = info
        self._lock = threading.Lock()
        self._next = 0
        self._slice = 0
        self._closed = False
        self.partial: str | None = None  # what is missing, when only part of the recording is readable
        self._partial_where = info.name

    def mark_partial(self, where: object, note: str) -> None:
        """Only part of the recording is readable: warn now, and end iteration with ``PartialSource``."""
        if self.partial is None:
            log.warning("%s: %s; playing those", where, note)
        self.partial, self._partial_where = note, str(where)

    @property
    def slice_index(self) -> int:
        return self._slice

    @abc.abstractmethod
    def read_frame(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Image ``(H, W[, 3])`` and ground truth ``(H, W)`` uint8 (or None) of frame ``index``."""

    def seek(self, index: int) -> None:
        n = self.info.n_frames or 0
        if not 0 <= index < max(n, 1):
            raise ValueError(f"{self.info.name}: frame {index} outside 0..{n - 1}")
        with self._lock:
            self._next = int(index)

    def set_slice(self, z: int) -> None:
        if not 0 <= z < self.info.n_slices:
            raise ValueError(f"{self.info.name}: slice {z} outside 0..{self.info.n_slices - 1}")
        with self._lock:
            self._slice = int(z)

    def __iter__(self) -> Iterator[Frame]:
        n = self.info.n_frames or 0
        while not self._closed:
            with self._lock:
                index = self._next
                if index >= n:
                    if self.partial is not None:
                        raise PartialSource(self._partial_where, self.partial)
                    return
                self._next = index + 1
                z = self._slice
            try:
                image, gt = self.read_frame(index)
            except EndOfRecording:
                if self.partial is not None:
                    raise PartialSource(self._partial_where, self.partial) from None
                return
            meta = {"slice": z} if self.info.n_slices > 1 or self.info.modality == "cine" else {}
            yield Frame(index=index, image=image, t_arrival=time.perf_counter_ns(), ground_truth=gt, meta=meta)

    def close(self) -> None:
        self._closed = True

    def preview_frames(self, n: int) -> list[np.ndarray]:
        """Images of ``n`` frames spread over the recording (current slice); unreadable ones are skipped."""
        total = self.info.n_frames or 0
        out = []
        for index in sorted({int(round(i)) for i in np.linspace(0, max(total - 1, 0), min(n, total))}):
            try:
                out.append(self.read_frame(index)[0])
            except (EndOfRecording, DataError):
                break
        return out


class ArraySource(RecordingSource):
    """A recording held in memory.

    Args:
        info: What the source is (``n_frames`` and ``n_slices`` are filled in from ``frames``).
        frames: ``(T, H, W)`` / ``(T, H, W, 3)`` (one slice) or ``(T, Z, H, W)`` (cine, Z slices).
        labels: Ground truth with the shape of ``frames`` minus any colour axis, or None.
        labelled_frames: Frames whose labels are ground truth (others carry none); None = all.
    """

    def __init__(self, info: SourceInfo, frames: np.ndarray, labels: np.ndarray | None = None,
                 labelled_frames: tuple[int, ...] | None = None, sliced: bool = False):
        super().__init__(info)
        self._frames = frames
        self._labels = labels
        self._labelled = None if labelled_frames is None else frozenset(int(i) for i in labelled_frames)
        self._sliced = sliced
        info.n_frames = int(frames.shape[0])
        info.n_slices = int(frames.shape[1]) if sliced else 1
        info.has_ground_truth = labels is not None and (self._labelled is None or bool(self._labelled))

    def read_frame(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._sliced:
            image = self._frames[index, self._slice]
        else:
            image = self._frames[index]
        gt = None
        if self._labels is not None and (self._labelled is None or index in self._labelled):
            gt = self._labels[index, self._slice] if self._sliced else self._labels[index]
            gt = np.ascontiguousarray(gt, dtype=np.uint8)
        return np.ascontiguousarray(image), gt


def check_frames(path: object, frames: np.ndarray) -> np.ndarray:
    """Reject arrays that cannot be frames: empty, wrong number of dimensions, non-numeric."""
    if frames.size == 0:
        raise DataError(path, f"contains no image data (shape {frames.shape})")
    if frames.dtype.kind not in "uif":
        raise DataError(path, f"pixel data of type {frames.dtype} is not an image")
    if frames.ndim not in (3, 4):
        raise DataError(path, f"expected frames (T, H, W[, 3]) or (T, Z, H, W), got shape {frames.shape}")
    if min(frames.shape[1:3]) < 8 and frames.ndim == 3:
        raise DataError(path, f"frames of {frames.shape[1]}x{frames.shape[2]} pixels are too small to segment")
    return frames
