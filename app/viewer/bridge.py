"""From the pipeline's worker thread to the GUI thread: newest result wins, paints are throttled.

The pipeline calls ``push(result)`` on its own thread for every processed frame. The bridge keeps
only the newest result (plus a small summary of every frame, for counters and the quality
alert) and posts at most one queued signal to the GUI thread at a time. The GUI side paints at
most ``max_fps`` times per second: when a result arrives sooner than that after the last paint,
a single-shot timer paints the newest one when the interval is up. So a burst of frames costs
the GUI thread one paint, never a backlog of queued frames.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import NamedTuple

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal

from app.engine.types import FrameResult


class FrameSummary(NamedTuple):
    """The few numbers kept for every processed frame, painted or not."""

    index: int
    predicted_dice: float | None
    true_dice: float | None
    latency_ms: float | None
    error: str | None


class ResultBridge(QObject):
    """Thread-safe newest-result slot with a throttled ``display`` signal on the GUI thread.

    Signals:
        display(result, summaries): the newest ``FrameResult`` and a list of ``FrameSummary`` for
            every frame processed since the previous ``display`` (oldest first).

    Args:
        max_fps: Upper bound on paints per second.
        max_summaries: Bound on summaries kept between two paints (a stalled GUI cannot grow it).
    """

    display = pyqtSignal(object, object)
    _arrived = pyqtSignal()

    def __init__(self, max_fps: float = 60.0, max_summaries: int = 2048, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._newest: FrameResult | None = None
        self._summaries: deque[FrameSummary] = deque(maxlen=max_summaries)
        self._posted = False
        self._min_interval_ns = int(1e9 / max_fps)
        self._last_display_ns = 0
        self.received = 0    # results pushed
        self.displayed = 0   # display signals emitted (= frames handed to the painter)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._flush)
        self._arrived.connect(self._on_arrived, Qt.ConnectionType.QueuedConnection)

    def push(self, result: FrameResult) -> None:
        """Hand over one result (any thread; never blocks on the GUI)."""
        summary = FrameSummary(result.frame.index, result.predicted_dice, result.true_dice,
                               result.latency_ms, result.error)
        with self._lock:
            self._newest = result
            self._summaries.append(summary)
            self.received += 1
            post = not self._posted
            self._posted = True
        if post:
            self._arrived.emit()

    def idle(self) -> bool:
        """True when nothing is waiting to be displayed."""
        with self._lock:
            return self._newest is None and not self._posted

    def clear(self) -> None:
        """Forget anything not yet displayed (a new source or model)."""
        with self._lock:
            self._newest = None
            self._summaries.clear()

    def _on_arrived(self) -> None:
        if self._timer.isActive():
            return
        wait_ns = self._min_interval_ns - (time.perf_counter_ns() - self._last_display_ns)
        if wait_ns <= 0:
            self._flush()
        else:
            self._timer.start(max(1, math.ceil(wait_ns / 1e6)))

    def _flush(self) -> None:
        with self._lock:
            result, self._newest = self._newest, None
            summaries = list(self._summaries)
            self._summaries.clear()
            self._posted = False
        if result is None:
            return
        self._last_display_ns = time.perf_counter_ns()
        self.displayed += 1
        self.display.emit(result, summaries)
