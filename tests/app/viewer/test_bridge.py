"""Worker thread -> GUI thread: newest result wins, every frame is summarised, paints are bounded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.engine.types import Frame, FrameResult
from app.viewer.bridge import ResultBridge

pytestmark = pytest.mark.gui


def _result(i: int) -> FrameResult:
    frame = Frame(index=i, image=np.zeros((4, 4), np.uint8), t_arrival=time.perf_counter_ns())
    return FrameResult(frame=frame, mask=None, predicted_dice=i / 1000.0)


def test_burst_from_a_worker_thread_is_painted_once_with_all_summaries(qtbot) -> None:
    bridge = ResultBridge(max_fps=30.0)
    shown: list = []
    bridge.display.connect(lambda result, summaries: shown.append((result.frame.index, [s.index for s in summaries])))
    n = 500
    thread = threading.Thread(target=lambda: [bridge.push(_result(i)) for i in range(n)])
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: bridge.idle() and shown and shown[-1][0] == n - 1, timeout=5000)
    assert bridge.received == n
    assert len(shown) == bridge.displayed < n  # a burst never becomes a backlog of paints
    assert [i for _, batch in shown for i in batch] == list(range(n))  # every frame counted once, in order


def test_results_arriving_too_fast_are_throttled_to_the_newest(qtbot) -> None:
    bridge = ResultBridge(max_fps=1.0)  # at most one paint a second
    shown: list[int] = []
    bridge.display.connect(lambda result, summaries: shown.append(result.frame.index))
    bridge.push(_result(0))
    qtbot.waitUntil(lambda: shown == [0], timeout=5000)
    for i in range(1, 6):
        bridge.push(_result(i))
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=5000)
    assert shown == [0, 5]


def test_clear_drops_what_was_not_shown(qtbot) -> None:
    bridge = ResultBridge(max_fps=1.0)
    shown: list[int] = []
    bridge.display.connect(lambda result, summaries: shown.append(result.frame.index))
    bridge.push(_result(0))
    qtbot.waitUntil(lambda: shown == [0], timeout=5000)
    bridge.push(_result(1))
    bridge.clear()
    qtbot.waitUntil(bridge.idle, timeout=5000)
    assert shown == [0]
