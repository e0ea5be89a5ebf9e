"""Video files and capture devices through OpenCV.

A frame grabber on the scanner's video output appears as an OpenCV capture device
(``camera:N``); that is how research systems usually connect to a closed scanner.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from app.data.case import DataError
from app.data.frame_rate import checked_fps, describe, is_plausible
from app.engine.sources.base import EndOfRecording, FrameSource, RecordingSource
from app.engine.types import Frame, SourceInfo

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".m4v", ".mpg", ".mpeg")
DEFAULT_FRAME_RATE = 30.0
# FFmpeg prints every damaged packet to stderr ("[mjpeg @ 0x...] overread 8"); a damaged file is
# reported once, in words, instead. Set the variable yourself to see FFmpeg's messages.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def _open_file(path: Path) -> cv2.VideoCapture:
    """A capture through FFmpeg (OpenCV's fallback AVI reader prints its complaints to stderr)."""
    if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    return cv2.VideoCapture(str(path))


def _frame_count(value: object) -> int:
    """OpenCV's frame count as an int (0 when unknown, negative, NaN or absurd)."""
    try:
        count = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return int(count) if 0 < count < 1e8 else 0


class VideoFileSource(RecordingSource):
    """A video file decoded frame by frame (sequential reads; ``seek`` repositions the decoder)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "missing file")
        self._cap = _open_file(self.path)
        if not self._cap.isOpened():
            raise DataError(self.path, "not a readable video (OpenCV could not open it)")
        n = _frame_count(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        raw_fps = self._cap.get(cv2.CAP_PROP_FPS)
        fps = checked_fps(self.path, raw_fps, f"frame rate {describe(raw_fps)}", DEFAULT_FRAME_RATE)
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise DataError(self.path, "video holds no decodable frame (truncated or empty)")
        self._shape = first.shape
        if n == 0:  # the container does not say: count by reading through once
            n = self._count_frames()
        self._decoder_at = 1  # index of the frame the next cap.read() returns
        self._cap_lock = threading.Lock()
        super().__init__(SourceInfo(name=self.path.name, modality="echo", frame_rate=fps, n_frames=max(n, 1)))
        self._declared = n
        self._short_warned = False
        self._first = first

    def read_frame(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        with self._cap_lock:
            if index == 0 and self._first is not None:
                bgr = self._first
            else:
                seeked = index != self._decoder_at
                if seeked:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                ok, bgr = self._cap.read()
                readable = index
                if (not ok or bgr is None) and seeked:
                    # Seeking is approximate in some containers and lands past the end of a cut
                    # file: decode from the start to tell a frame that is there from one that is not,
                    # and how many frames are readable (the same count playback in order finds).
                    ok, bgr, readable = self._decode_from_start(index)
                if not ok or bgr is None:
                    self._decoder_at = -1  # the decoder is past its end: the next read seeks
                    self._ended_early(readable)
                    raise EndOfRecording
                self._decoder_at = index + 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None

    def _decode_from_start(self, index: int) -> tuple[bool, np.ndarray | None, int]:
        """Reopen and decode frames ``0..index`` in order: ``(ok, frame index, frames readable)``;
        when not ok, the frames readable are those before the first that failed."""
        self._cap.release()
        self._cap = _open_file(self.path)
        for done in range(index):
            if not self._cap.grab():
                return False, None, done
        ok, bgr = self._cap.read()
        return bool(ok) and bgr is not None, bgr, index

    def _count_frames(self) -> int:
        count = 1
        while self._cap.grab():
            count += 1
        self._cap.release()  # reopen rather than seek back: seeking is not exact in every container
        self._cap = _open_file(self.path)
        self._cap.grab()
        return count

    def _ended_early(self, index: int) -> None:
        """The decoder gave out at ``index`` before the container's frame count: a truncated file.

        A shortfall of one frame (or 1%) is only a warning: some containers estimate their count.
        """
        self.info.n_frames = index
        missing = self._declared - index
        if missing > max(1, self._declared // 100):
            self.mark_partial(self.path, f"truncated: {index} of {self._declared} frames readable")
        elif missing > 0 and not self._short_warned:
            self._short_warned = True
            log.warning("%s: %d of the %d frames the file announces decoded", self.path, index, self._declared)

    def close(self) -> None:
        super().close()
        with self._cap_lock:
            self._cap.release()


class CaptureSource(FrameSource):
    """A live OpenCV capture device (``camera:N``): a webcam or a frame grabber.

    Iteration blocks on the device; if it stops delivering (unplugged, grabber lost signal) for
    ``stall_timeout`` seconds, or reading fails, iteration raises ``DataError`` naming the device.
    """

    seekable = False

    def __init__(self, device: int, *, stall_timeout: float = 5.0, capture: cv2.VideoCapture | None = None):
        self.spec = f"camera:{device}"
        self._cap = capture if capture is not None else cv2.VideoCapture(int(device))
        if not self._cap.isOpened():
            raise DataError(self.spec, f"capture device {device} cannot be opened (absent or busy)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if fps and not is_plausible(fps):  # 0 means unknown; a live source needs no rate to play
            log.warning("%s: the device reports an implausible frame rate (%s); not pacing by it",
                        self.spec, describe(fps))
        self.info = SourceInfo(name=f"capture device {device}", modality=None,
                               frame_rate=float(fps) if is_plausible(fps) else None, n_frames=None)
        self._stall_timeout = float(stall_timeout)
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        last_ok = time.monotonic()
        while not self._closed.is_set():
            ok, bgr = self._cap.read()
            if self._closed.is_set():
                return
            if not ok or bgr is None:
                if time.monotonic() - last_ok > self._stall_timeout:
                    raise DataError(self.spec, f"capture device stopped delivering frames for {self._stall_timeout:.1f} s (disconnected?)")
                self._closed.wait(0.01)
                continue
            last_ok = time.monotonic()
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else bgr
            yield Frame(index=index, image=image, t_arrival=time.perf_counter_ns())
            index += 1

    def close(self) -> None:
        self._closed.set()
        self._cap.release()
