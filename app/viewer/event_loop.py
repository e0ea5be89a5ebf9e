"""How responsive the GUI thread is: a timer that measures its own lateness.

A precise ``QTimer`` fires every ``interval_ms``; each time, the monitor records how much later
than due it ran. If the GUI thread were busy decoding or running inference, this number would
jump to tens or hundreds of milliseconds. The viewer shows its p95 in the status bar and logs it.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from PyQt6.QtCore import QObject, Qt, QTimer


class EventLoopMonitor(QObject):
    """Records event-loop delay (ms) on the thread it lives on.

    Args:
        interval_ms: Timer period.
        window: Number of recent delays kept for the percentiles.
    """

    def __init__(self, interval_ms: int = 20, window: int = 3000, parent: QObject | None = None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._delays: deque[float] = deque(maxlen=window)
        self.samples = 0
        self.worst_ms = 0.0
        self.worst_ever_ms = 0.0
        self._due_ns = 0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._due_ns = time.perf_counter_ns() + self.interval_ms * 1_000_000
        self._timer.start(self.interval_ms)

    def stop(self) -> None:
        self._timer.stop()

    def reset(self) -> None:
        """Start a new measurement window (e.g. once a source plays); ``worst_ever_ms`` is kept."""
        self._delays.clear()
        self.samples = 0
        self.worst_ms = 0.0

    def _tick(self) -> None:
        now = time.perf_counter_ns()
        delay = max(0.0, (now - self._due_ns) / 1e6)
        self._delays.append(delay)
        self.samples += 1
        self.worst_ms = max(self.worst_ms, delay)
        self.worst_ever_ms = max(self.worst_ever_ms, delay)
        self._due_ns = now + self.interval_ms * 1_000_000

    def summary(self) -> dict[str, float]:
        """``p50``, ``p95``, ``p99``, ``max`` delay (ms) over the window since ``reset``, ``samples`` since
        ``reset``, and ``worst_ever`` (since the monitor was made, start-up included)."""
        values = np.fromiter(self._delays, dtype=np.float64)
        if values.size == 0:
            return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan"),
                    "samples": 0, "worst_ever": self.worst_ever_ms}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max()),
                "samples": self.samples, "worst_ever": float(self.worst_ever_ms)}
