"""What the display itself achieves: frames painted per second and arrival-to-painted latency.

Fed on the GUI thread with each result the image view painted (``timestamps["painted"]``). The
pipeline's own figures stop at "overlay ready"; these add the last hop to the screen.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class DisplayMeter:
    """Rolling window of paint times and arrival-to-painted latencies.

    Args:
        window: Number of most recent painted frames kept.
    """

    def __init__(self, window: int = 120):
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._painted_ns: deque[int] = deque(maxlen=window)

    def reset(self) -> None:
        self._latency_ms.clear()
        self._painted_ns.clear()

    def painted(self, result) -> None:
        """Record one painted ``FrameResult`` (ignored when it carries no ``painted`` stamp)."""
        painted = result.timestamps.get("painted")
        if painted is None:
            return
        arrival = result.timestamps.get("arrival", result.frame.t_arrival)
        self._latency_ms.append((painted - arrival) / 1e6)
        self._painted_ns.append(painted)

    def shown_fps(self) -> float:
        """Frames painted per second over the window (0 with fewer than two)."""
        t = self._painted_ns
        if len(t) < 2 or t[-1] <= t[0]:
            return 0.0
        return (len(t) - 1) / ((t[-1] - t[0]) / 1e9)

    def painted_latency_p50(self) -> float:
        """Median arrival-to-painted latency in ms (NaN when nothing was painted)."""
        if not self._latency_ms:
            return float("nan")
        return float(np.median(np.fromiter(self._latency_ms, dtype=np.float64)))
