"""Player: delivery order, pause/step/resume, seek, loop, end and error callbacks (no wall-clock checks)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.data.case import DataError
from app.engine.player import Player
from app.engine.sources.base import ArraySource, FrameSource
from app.engine.types import SourceInfo

pytestmark = pytest.mark.timeout(60)


def _recording(n: int = 10, rate: float | None = 1000.0) -> ArraySource:
    frames = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 16, 16), np.uint8)
    return ArraySource(SourceInfo("test", "echo", rate), frames)


class Sink:
    def __init__(self):
        self.indices: list[int] = []
        self.cond = threading.Condition()

    def __call__(self, frame) -> None:
        assert int(frame.image[0, 0]) == frame.index
        with self.cond:
            self.indices.append(frame.index)
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.indices) >= n, timeout)


@pytest.mark.parametrize("paced", [True, False])
def test_plays_every_frame_in_order_then_ends(paced):
    sink, ended = Sink(), threading.Event()
    player = Player(_recording(), sink, paced=paced, on_end=ended.set)
    player.start()
    assert ended.wait(10) and player.join(5)
    assert sink.indices == list(range(10)) and player.position == 10


def test_pause_step_resume_seek():
    sink, ended = Sink(), threading.Event()
    player = Player(_recording(), sink, paced=True, speed=0.5, on_end=ended.set)
    player.pause()
    player.start()
    assert not sink.wait_for(1, timeout=0.2)  # paused before the first frame: nothing delivered
    player.step()
    assert sink.wait_for(1)
    player.step()
    assert sink.wait_for(2)
    assert sink.indices == [0, 1] and player.paused
    player.seek(7)
    player.set_speed(50.0)
    player.resume()
    assert ended.wait(10)
    # frame 2 was decoded before the seek and is discarded as stale
    assert sink.indices == [0, 1, 7, 8, 9]
    player.stop()
    player.stop()  # idempotent


def test_one_step_after_a_seek_while_paused_shows_the_sought_frame():
    """The frame decoded before the seek is stale and must not use up the step."""
    sink = Sink()
    player = Player(_recording(), sink, paced=False)
    player.pause()
    player.start()
    player.step()
    assert sink.wait_for(1)
    player.seek(6)
    player.step()
    assert sink.wait_for(2)
    assert sink.indices == [0, 6]
    player.stop()


def test_loop_restarts_recordings_until_stopped():
    sink = Sink()
    player = Player(_recording(5), sink, paced=False, loop=True)
    player.start()
    assert sink.wait_for(12)
    player.stop()
    assert sink.indices[:12] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert not player.running


def test_loop_keeps_the_frame_clock_running_across_the_wrap(monkeypatch):
    """Each frame's due time counts on from the previous pass (no re-clock at the wrap), so the first
    frame of the next pass is due one frame interval after the last one, not at once."""
    counts: list[int] = []
    original = Player._pace

    def spy(self, clock):
        counts.append(clock[1])  # frames scheduled since the clock's origin, before this one
        return original(self, clock)

    monkeypatch.setattr(Player, "_pace", spy)
    sink = Sink()
    player = Player(_recording(4, rate=2000.0), sink, paced=True, loop=True)
    player.start()
    assert sink.wait_for(10)
    player.stop()
    assert sink.indices[:10] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert counts[:10] == list(range(10))


class FailingSource(FrameSource):
    def __init__(self):
        self.info = SourceInfo("failing", "echo", None)

    def __iter__(self):
        yield from _recording(3)
        raise DataError("igtl://scanner:18944", "no image for 5.0 s (server disconnected)")


def test_source_failure_reaches_on_error():
    sink, errors, ended = Sink(), [], threading.Event()
    player = Player(FailingSource(), sink, on_error=lambda e: (errors.append(e), ended.set()), on_end=ended.set)
    player.start()
    assert ended.wait(10) and player.join(5)
    assert sink.indices == [0, 1, 2] and len(errors) == 1 and "disconnected" in str(errors[0])


def test_stop_returns_while_paused_forever():
    player = Player(_recording(), Sink())
    player.pause()
    player.start()
    player.stop()
    assert player.join(5)
    with pytest.raises(ValueError):
        Player(_recording(), Sink(), speed=0)
