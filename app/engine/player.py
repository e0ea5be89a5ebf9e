"""Reads a source on its own thread and hands frames to a sink at the source's frame rate.

Pacing follows the recording's clock: frame k is due ``k / (rate x speed)`` seconds after playback
(re)started, so a slow decode does not accumulate delay. Live sources (no frame rate) and
``paced=False`` deliver as fast as frames come. Newest-frame-wins is the pipeline's job, not this one's.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from app.data.case import DataError
from app.engine.sources.base import FrameSource, PartialSource
from app.engine.types import Frame

log = logging.getLogger(__name__)


class Player:
    """Plays a ``FrameSource`` into ``sink(frame)`` on a background thread.

    Args:
        source: The frames.
        sink: Called with each frame on the player thread (must be quick, e.g. ``Pipeline.submit``).
        paced: Follow the source's frame rate (False: as fast as it decodes).
        speed: Playback speed factor (paced only).
        loop: Seekable recordings restart at frame 0 at the end.
        on_end: Called once when the source ends (not when stopped).
        on_error: Called with the exception when the source fails (then the player ends).
    """

    def __init__(self, source: FrameSource, sink: Callable[[Frame], None], *, paced: bool = True,
                 speed: float = 1.0, loop: bool = False,
                 on_end: Callable[[], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None):
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.source = source
        self._sink = sink
        self._paced = paced
        self._speed = float(speed)
        self._loop = loop
        self._on_end = on_end
        self._on_error = on_error
        self._cond = threading.Condition()
        self._paused = False
        self._steps = 0
        self._stop = False
        self._position = 0
        self._reclock = True
        self._seek_generation = 0
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start playing (once)."""
        if self._thread is not None:
            raise RuntimeError("player already started")
        self._thread = threading.Thread(target=self._run, name="player", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._steps = 0
            self._reclock = True
            self._cond.notify_all()

    def step(self) -> None:
        """While paused: deliver exactly one more frame."""
        with self._cond:
            if self._paused:
                self._steps += 1
                self._cond.notify_all()

    def seek(self, index: int) -> None:
        """Recordings: continue from frame ``index`` (``ValueError`` for live sources)."""
        self.source.seek(index)
        with self._cond:
            self._seek_generation += 1
            self._position = int(index)
            self._reclock = True
            self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        with self._cond:
            self._speed = float(speed)
            self._reclock = True

    def set_loop(self, loop: bool) -> None:
        with self._cond:
            self._loop = bool(loop)

    def stop(self) -> None:
        """Stop and join the thread; idempotent. Does not close the source."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
            if thread.is_alive():
                log.warning("player thread still blocked in its source after 10 s")

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def position(self) -> int:
        """Index of the next frame to deliver."""
        return self._position

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the player to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- thread ---------------------------------------------------------------------------------
    def _wait_turn(self, generation: int) -> bool | None:
        """Block while paused (without a step); False when stopping, None when the frame went stale.

        A frame decoded before a seek is stale: it must not use up a pending step, or the first
        step after a seek while paused would show nothing.
        """
        with self._cond:
            while self._paused and self._steps == 0 and not self._stop:
                self._cond.wait()
            if self._stop:
                return False
            if generation != self._seek_generation:
                return None
            if self._paused:
                self._steps -= 1
            return True

    def _pace(self, clock: list) -> bool:
        """Sleep until this frame is due; False when stopping. ``clock`` = [t0_ns, frames since t0]."""
        rate = self.source.info.frame_rate
        if not self._paced or not rate or self._paused:
            return True
        with self._cond:
            if self._reclock:
                clock[0], clock[1] = time.perf_counter_ns(), 0
                self._reclock = False
            due = clock[0] + int(clock[1] * 1e9 / (rate * self._speed))
            clock[1] += 1
            while not self._stop and not self._reclock:
                remaining = (due - time.perf_counter_ns()) / 1e9
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return not self._stop

    def _run(self) -> None:
        clock = [0, 0]
        try:
            while True:
                frames = iter(self.source)
                while True:
                    generation = self._seek_generation
                    try:
                        frame = next(frames)
                    except StopIteration:
                        break
                    turn = self._wait_turn(generation)
                    if turn is False:
                        return
                    if turn is None:
                        continue  # decoded before a seek: stale
                    if not self._pace(clock):
                        return
                    frame.t_arrival = time.perf_counter_ns()
                    self._position = frame.index + 1
                    self._sink(frame)
                    if self._stop:
                        return
                if self._stop:
                    return
                if self._loop and self.source.seekable:
                    # The clock runs on across the wrap: frame 0 of the next pass is due one frame
                    # interval after the last frame, as at the scanner (re-clocking here made it due
                    # at once, so two frames arrived together and one was dropped per pass).
                    self.source.seek(0)
                    self._seek_generation += 1
                    self._position = 0
                    continue
                break
            if self._on_end is not None:
                self._on_end()
        except Exception as exc:  # sources raise DataError for bad input, stalls and disconnects
            if isinstance(exc, PartialSource):
                # the source warned once when it found what is missing ("truncated: N of M frames
                # readable; playing those"): ending there is that same problem, not a second one
                log.info("%s", exc)
            elif isinstance(exc, DataError):  # its message names the file
                log.warning("source failed: %s", exc)
            else:
                log.warning("source %s failed: %s", self.source.info.name, exc)
            if self._on_error is not None:
                self._on_error(exc)
