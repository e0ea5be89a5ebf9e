"""Shown FPS and arrival-to-painted latency from painted timestamps (no Qt, no clocks)."""

import math

import numpy as np

from app.engine.types import Frame, FrameResult
from app.viewer.display_meter import DisplayMeter


def _painted(arrival_ns: int, painted_ns: int | None) -> FrameResult:
    frame = Frame(index=0, image=np.zeros((2, 2), np.uint8), t_arrival=arrival_ns)
    ts = {"arrival": arrival_ns}
    if painted_ns is not None:
        ts["painted"] = painted_ns
    return FrameResult(frame=frame, mask=None, timestamps=ts)


def test_figures_from_stamps() -> None:
    meter = DisplayMeter(window=10)
    assert meter.shown_fps() == 0.0 and math.isnan(meter.painted_latency_p50())
    for k in range(5):  # painted every 25 ms, 8/9/10/11/12 ms after arrival
        t = k * 25_000_000
        meter.painted(_painted(t, t + (8 + k) * 1_000_000))
    meter.painted(_painted(0, None))  # never painted: ignored
    assert math.isclose(meter.shown_fps(), 1000 / 26)  # paints 26 ms apart
    assert math.isclose(meter.painted_latency_p50(), 10.0)
    meter.reset()
    assert meter.shown_fps() == 0.0
