"""Latency figures for model cards, via the project's one measurement path
(``search.latency.measure``: deployment session settings, warm-up, GC paused, median headline).

Every card's figures say where and under what load they were taken (``metrics.latency_context``: when, how,
the 1/5/15-minute load averages just before and just after): a figure taken on a busy build machine is then
visible as such, and ``python -m search retime`` (``search.export.retime``) re-times a folder's cards when
the machine is quiet.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from app.engine.benchmark import load_average
from search.latency.lut import hardware_fingerprint
from search.latency.measure import LatencyStats, measure_onnx_latency


def hardware_description() -> str:
    """One line naming the machine, e.g. ``"Intel Xeon ..., 2 logical cores, x86_64, Linux 6.1"``."""
    hw = hardware_fingerprint()
    return f"{hw['cpu']}, {hw['logical_cores']} logical cores, {hw['machine']}, {hw['system']}"


#: The card ``metrics`` keys ``latency_fields`` writes (what a re-timing replaces and keeps as the previous figures).
LATENCY_KEYS = ("latency_ms", "fps", "hardware", "runtime", "latency_context")


def latency_fields(stats: LatencyStats, *, how: str, load_before: Sequence[float] | None,
                   load_after: Sequence[float] | None = None) -> dict[str, Any]:
    """A card's latency fields from measured ``stats``: ``latency_ms {p50, p95, mean}``, ``fps``, ``hardware``,
    ``runtime`` (runtime, provider, threads) and ``latency_context`` (``measured``: UTC time, ``how``, the load
    averages ``load_avg_before`` / ``load_avg_after``)."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(timespec="minutes")
    return {
        "latency_ms": {"p50": round(stats.p50_ms, 3), "p95": round(stats.p95_ms, 3), "mean": round(stats.mean_ms, 3)},
        "fps": round(stats.fps, 2),
        "hardware": hardware_description(),
        "runtime": f"{stats.runtime}, {stats.threads} intra-op threads, sequential, batch 1",
        "latency_context": {"measured": now, "how": how,
                            "load_avg_before": list(load_before) if load_before is not None else None,
                            "load_avg_after": list(load_after) if load_after is not None else None},
    }


def card_latency(model: Path | bytes, feeds: Mapping[str, np.ndarray], *, repeats: int = 50,
                 warmup: int = 10) -> tuple[LatencyStats, dict[str, object]]:
    """Measure ``model`` on ``feeds`` and return the stats plus the card's latency fields (``latency_fields``)."""
    before = load_average()
    stats = measure_onnx_latency(model, dict(feeds), warmup=warmup, repeats=repeats)
    how = f"at export: {repeats} back-to-back runs after {warmup} warm-up runs, on the export's parity inputs"
    return stats, latency_fields(stats, how=how, load_before=before, load_after=load_average())
