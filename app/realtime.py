"""The real-time rule: one definition, used by the app, the search, the export and the cards.

A segmentation (plus its QC partner) runs in real time at the scanner when its **p95 latency is at
most 50 ms and its throughput is at least 22 frames per second** (README.md, the budget at the
top). Everything that decides "real time or not" (replay reports, the viewer's latency panel,
the default-model choice, model cards written by the search, the report tables) asks
:data:`REALTIME`; nothing else defines the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class RealtimeRule:
    """p95 latency <= ``p95_ms`` and throughput >= ``fps``.

    Attributes:
        p95_ms: Largest allowed 95th-percentile latency, milliseconds.
        fps: Smallest allowed throughput, frames per second.
    """

    p95_ms: float = 50.0
    fps: float = 22.0

    def meets(self, p95_ms: float | None, fps: float | None) -> bool:
        """Whether a measured p95 latency and throughput satisfy the rule (missing figures: no)."""
        if p95_ms is None or fps is None:
            return False
        p95, rate = float(p95_ms), float(fps)
        if p95 != p95 or rate != rate:  # NaN
            return False
        return p95 <= self.p95_ms and rate >= self.fps

    def meets_metrics(self, metrics: Mapping) -> bool:
        """The rule applied to a card's ``metrics`` (``latency_ms.p95`` and ``fps``)."""
        lat = metrics.get("latency_ms") or {}
        p95 = lat.get("p95") if isinstance(lat, Mapping) else None
        return self.meets(p95, metrics.get("fps"))

    def describe(self) -> str:
        """E.g. ``"p95 <= 50 ms and >= 22 FPS"``."""
        return f"p95 <= {self.p95_ms:g} ms and >= {self.fps:g} FPS"


REALTIME = RealtimeRule()
"""The project's rule: p95 <= 50 ms and >= 22 FPS."""
