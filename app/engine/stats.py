"""Rolling pipeline statistics: latency percentiles, throughput, drops, deadline misses, stage times.

``StatsRecorder`` is written by the pipeline's worker thread and read (as a frozen
``PipelineStats`` snapshot) from any thread. Its memory is bounded: only the last ``window``
frames are kept for the percentiles and FPS; counters are plain integers.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from app.engine.types import FrameResult
from app.realtime import REALTIME

STAGES = ("queue", "preprocess", "segment", "qc", "overlay")
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
# What field latency benchmarks report (HoloHub's flow benchmarking): p50 to p99.9 and max.
FIELD_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
WARMUP_FRAMES = 10      # first frames left out of field percentiles (model and cache warm-up)
TAIL_FRAMES = 10        # last frames left out (shutdown)
MIN_FRAMES_TO_TRIM = 40  # trim only runs longer than this


@dataclass(frozen=True)
class PipelineStats:
    """A snapshot of the pipeline's counters and rolling figures.

    Attributes:
        frames_in: Frames submitted to the pipeline.
        processed: Frames that went through every stage (including those whose inference failed).
        dropped: Frames replaced by a newer one before processing started (newest frame wins).
        errors: Frames whose processing raised (each has ``FrameResult.error`` set).
        deadline_misses: Processed frames whose end-to-end latency exceeded the deadline.
        latency_ms: ``p50``, ``p95``, ``p99``, ``max`` of end-to-end latency over the window (NaN if empty).
        fps: Processed frames per second over the window (0 with fewer than two frames).
        stages_ms: Median duration of each stage (``preprocess``, ``segment``, ``qc``, ``overlay``).
    """

    frames_in: int
    processed: int
    dropped: int
    errors: int
    deadline_misses: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    fps: float = 0.0
    stages_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-JSON dict (python floats and ints only)."""
        return asdict(self)


def percentiles(values_ms: np.ndarray, levels: dict[str, float] = PERCENTILES) -> dict[str, float]:
    """``levels`` (default ``p50/p95/p99``) plus ``max`` of a 1-D array of ms (NaN for an empty array)."""
    values_ms = np.asarray(values_ms, dtype=np.float64)
    if values_ms.size == 0:
        return {k: float("nan") for k in (*levels, "max")}
    out = {k: float(np.percentile(values_ms, q)) for k, q in levels.items()}
    out["max"] = float(values_ms.max())
    return out


def trim_warmup(values_ms: np.ndarray, warmup: int = WARMUP_FRAMES, tail: int = TAIL_FRAMES,
                min_frames: int = MIN_FRAMES_TO_TRIM) -> tuple[np.ndarray, int, int]:
    """Leave out the first ``warmup`` and last ``tail`` values when there are more than ``min_frames``.

    Returns:
        ``(kept values, number left out at the start, number left out at the end)``.
    """
    values_ms = np.asarray(values_ms, dtype=np.float64)
    if values_ms.size <= min_frames:
        return values_ms, 0, 0
    return values_ms[warmup:values_ms.size - tail], warmup, tail


def field_latency(values_ms: np.ndarray) -> tuple[dict[str, float], int, int]:
    """Latency as field benchmarks report it: ``p50 p90 p95 p99 p99.9 max`` over the frames in
    processing order, warm-up and tail frames left out (see ``trim_warmup``).

    Returns:
        ``(percentiles, frames left out at the start, frames left out at the end)``.
    """
    kept, head, tail = trim_warmup(values_ms)
    return percentiles(kept, FIELD_PERCENTILES), head, tail


class StatsRecorder:
    """Thread-safe counters plus a rolling window of per-frame timings.

    Args:
        deadline_ms: End-to-end latency above which a frame counts as a deadline miss.
        window: Number of most recent processed frames kept for percentiles and FPS.
    """

    def __init__(self, deadline_ms: float = REALTIME.p95_ms, window: int = 300):
        self.deadline_ms = float(deadline_ms)
        self.window = int(window)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter and empty the window."""
        with self._lock:
            self._frames_in = 0
            self._processed = 0
            self._dropped = 0
            self._errors = 0
            self._misses = 0
            self._latency = deque(maxlen=self.window)
            self._done_ns = deque(maxlen=self.window)
            self._stages = {s: deque(maxlen=self.window) for s in STAGES}

    def frame_in(self) -> None:
        with self._lock:
            self._frames_in += 1

    def frame_dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def frame_done(self, result: FrameResult) -> None:
        """Record one processed frame (its latency, stage times, error, deadline)."""
        latency = result.latency_ms
        stages = result.stage_ms()
        with self._lock:
            self._processed += 1
            if result.error is not None:
                self._errors += 1
            if latency is not None and result.error is None:
                self._latency.append(latency)
                if latency > self.deadline_ms:
                    self._misses += 1
            self._done_ns.append(result.timestamps.get("overlay", 0))
            for name, ms in stages.items():
                self._stages[name].append(ms)

    def snapshot(self) -> PipelineStats:
        """A consistent frozen copy of the current figures."""
        with self._lock:
            latency = np.fromiter(self._latency, dtype=np.float64)
            done = np.fromiter(self._done_ns, dtype=np.int64)
            stages = {s: np.fromiter(v, dtype=np.float64) for s, v in self._stages.items()}
            counts = (self._frames_in, self._processed, self._dropped, self._errors, self._misses)
        fps = 0.0
        if done.size >= 2 and done[-1] > done[0]:
            fps = float((done.size - 1) / ((done[-1] - done[0]) / 1e9))
        stages_ms = {s: float(np.median(v)) if v.size else float("nan") for s, v in stages.items()}
        return PipelineStats(*counts, latency_ms=percentiles(latency), fps=fps, stages_ms=stages_ms)
