"""Recording a viewer session to a folder, written as it happens.

Layout of one session folder::

    session.json      what was recorded (source name, models, thresholds, start / end time)
    frames.csv        one row per processed frame (timings, predicted and true Dice, quality)
    qc_log.jsonl      one JSON object per event (source / model changes, quality alerts, errors,
                      periodic pipeline and display statistics)
    masks/            one lossless PNG label map per processed frame (pixel value = class)
    screenshots/      PNG screenshots of the window

Every row and line is flushed as soon as it is written and every mask is written to a temporary
name and renamed, so a session that is interrupted (closed window, crash, power cut aside) keeps
everything written so far. Writing happens on the recorder's own thread behind a bounded queue:
the pipeline's worker thread only hands results over and never waits for the disk.

No patient identifiers are written: only the source's display name (which ``SourceInfo``
promises is identifier-free), frame indices and measurements.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import queue
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.engine.types import FrameResult
from app.viewer.quality import QualityThresholds

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "seq", "frame_index", "slice", "t_s", "latency_ms", "preprocess_ms", "segment_ms", "qc_ms",
    "overlay_ms", "predicted_dice", "true_dice", "quality", "model_id", "error",
)
_STOP = object()


def new_session_folder(root: Path | str, now: datetime | None = None) -> Path:
    """A fresh ``root/session-YYYYmmdd-HHMMSS[-n]`` folder (created)."""
    root = Path(root)
    stamp = (now or datetime.now()).strftime("session-%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise OSError(f"{root}: could not create a new session folder")


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


class SessionRecorder:
    """Writes masks, the per-frame CSV and the QC log of one session into ``folder``.

    Args:
        folder: An existing, empty session folder (see ``new_session_folder``).
        meta: What is being recorded (source name, model ids, ...): goes into ``session.json``.
        thresholds: Used to write each frame's traffic-light level.
        save_masks: Write one PNG per processed frame.
        max_pending: Results waiting for the disk; beyond it new ones are dropped and counted.
    """

    def __init__(self, folder: Path | str, meta: dict[str, Any] | None = None, *,
                 thresholds: QualityThresholds | None = None, save_masks: bool = True,
                 max_pending: int = 256):
        self.folder = Path(folder)
        self.thresholds = thresholds or QualityThresholds()
        self.save_masks = save_masks
        self.model_id = (meta or {}).get("model_id")
        self.masks_dir = self.folder / "masks"
        self.screenshots_dir = self.folder / "screenshots"
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        self.screenshots_dir.mkdir(parents=True, exist_ok=True)
        self._meta = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "ended": None,
                      **(meta or {})}
        self._write_meta()
        self._csv_fh = open(self.folder / "frames.csv", "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_fh)
        self._csv.writerow(CSV_COLUMNS)
        self._csv_fh.flush()
        self._log_fh = open(self.folder / "qc_log.jsonl", "a", encoding="utf-8")
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._t0 = time.perf_counter_ns()
        self._seq = 0
        self._screens = 0
        self.written = 0          # frames whose row (and mask) are on disk
        self.dropped = 0          # frames not recorded because the disk fell behind
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="session-recorder", daemon=True)
        self._thread.start()
        self.log_event("recording_started", **{k: v for k, v in self._meta.items() if k != "ended"})

    # -- producers (any thread) ---------------------------------------------------------------
    def submit(self, result: FrameResult) -> None:
        """Queue one processed frame for writing; never blocks (drops and counts when full)."""
        if self._closed:
            return
        try:
            self._queue.put_nowait(("frame", result))
        except queue.Full:
            self.dropped += 1

    def log_event(self, kind: str, **data: Any) -> None:
        """Append one event to ``qc_log.jsonl`` (written in order with the frames)."""
        if self._closed:
            return
        entry = {"t_s": round((time.perf_counter_ns() - self._t0) / 1e9, 4), "event": kind, **data}
        try:
            self._queue.put(("event", entry), timeout=1.0)
        except queue.Full:
            self.dropped += 1

    def set_thresholds(self, thresholds: QualityThresholds) -> None:
        self.thresholds = thresholds

    def set_model(self, model_id: str | None) -> None:
        self.model_id = model_id

    def next_screenshot_path(self) -> Path:
        """Where the next screenshot goes (``screenshots/screen-0001.png``, ...)."""
        self._screens += 1
        return self.screenshots_dir / f"screen-{self._screens:04d}.png"

    # -- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            kind, payload = item
            try:
                if kind == "frame":
                    self._write_frame(payload)
                else:
                    self._log_fh.write(json.dumps(plain_json(payload), default=_json_default) + "\n")
                    self._log_fh.flush()
            except Exception as exc:  # a full disk must not kill the viewer: log and go on
                log.error("recording to %s failed: %s", self.folder, exc)
                self.dropped += 1

    def _write_frame(self, result: FrameResult) -> None:
        self._seq += 1
        frame = result.frame
        if self.save_masks and result.mask is not None:
            name = self.masks_dir / f"{self._seq:06d}_f{frame.index:05d}.png"
            tmp = name.with_suffix(".tmp.png")
            if not cv2.imwrite(str(tmp), np.ascontiguousarray(result.mask, dtype=np.uint8)):
                raise OSError(f"{tmp}: could not write mask")
            os.replace(tmp, name)
        stages = result.stage_ms()
        arrival = result.timestamps.get("arrival", frame.t_arrival)
        self._csv.writerow([
            self._seq, frame.index, frame.meta.get("slice", ""), _fmt((arrival - self._t0) / 1e9, 4),
            _fmt(result.latency_ms), *(_fmt(stages.get(s)) for s in ("preprocess", "segment", "qc", "overlay")),
            _fmt(result.predicted_dice, 4), _fmt(result.true_dice, 4),
            self.thresholds.classify(result.predicted_dice).value, self.model_id or "", result.error or "",
        ])
        self._csv_fh.flush()
        self.written += 1

    def _write_meta(self) -> None:
        tmp = self.folder / "session.json.tmp"
        tmp.write_text(json.dumps(plain_json(self._meta), indent=2, default=_json_default))
        os.replace(tmp, self.folder / "session.json")

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, stamp the end time and close the files. Idempotent."""
        if self._closed:
            return
        self.log_event("recording_stopped", frames=self._seq + self._queue.qsize(), dropped=self.dropped)
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._csv_fh.close()
        self._log_fh.close()
        self._meta.update(ended=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          frames=self.written, dropped=self.dropped)
        self._write_meta()
        log.info("session recorded to %s (%d frames, %d dropped)", self.folder, self.written, self.dropped)


def plain_json(value: Any) -> Any:
    """NaN/inf -> None, recursively, so every line is strict JSON (readable by any parser)."""
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
