"""Latency figures for model cards, via the project's one measurement path
(``search.latency.measure``: deployment session settings, warm-up, GC paused, median headline)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from search.latency.lut import hardware_fingerprint
from search.latency.measure import LatencyStats, measure_onnx_latency


def hardware_description() -> str:
    """One line naming the machine, e.g. ``"Intel Xeon ..., 2 logical cores, x86_64, Linux 6.1"``."""
    hw = hardware_fingerprint()
    return f"{hw['cpu']}, {hw['logical_cores']} logical cores, {hw['machine']}, {hw['system']}"


def card_latency(model: Path | bytes, feeds: Mapping[str, np.ndarray], *, repeats: int = 50,
                 warmup: int = 10) -> tuple[LatencyStats, dict[str, object]]:
    """Measure ``model`` on ``feeds`` and return the stats plus the card's latency fields.

    Returns:
        ``(stats, fields)`` where fields has ``latency_ms {p50, p95, mean}``, ``fps``, ``hardware``,
        ``runtime`` (runtime, provider and thread count).
    """
    stats = measure_onnx_latency(model, dict(feeds), warmup=warmup, repeats=repeats)
    fields = {
        "latency_ms": {"p50": round(stats.p50_ms, 3), "p95": round(stats.p95_ms, 3), "mean": round(stats.mean_ms, 3)},
        "fps": round(stats.fps, 2),
        "hardware": hardware_description(),
        "runtime": f"{stats.runtime}, {stats.threads} intra-op threads, sequential, batch 1",
    }
    return stats, fields
