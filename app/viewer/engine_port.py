"""The engine as the viewer sees it: a handful of factories, injectable for tests.

The viewer drives ``app.engine`` only through an ``EnginePort``: ``open_source(spec)``,
``Player(source, sink, ...)``, ``Pipeline(seg, qc, on_result=...)``, ``list_models`` /
``default_models`` and ``demo_source_spec``. ``EnginePort.real()`` binds the real engine (an
engine module that fails to import raises). Tests pass small fakes with the same signatures, and
may leave parts None: the window then says what is missing instead of crashing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from app.engine.stats import StatsRecorder
from app.engine.types import Frame, FrameResult
from app.realtime import REALTIME


@dataclass
class EnginePort:
    """Factories the viewer calls. A fake may leave any of them None (that part is then unavailable).

    Attributes:
        open_source: ``open_source(spec) -> FrameSource``.
        player: ``Player(source, sink, *, paced, speed, loop, on_end, on_error)``.
        pipeline: ``Pipeline(seg, qc, *, on_result, overlay, deadline_ms)``.
        list_models: ``list_models(modality, models_dir) -> list[ModelCard]``.
        default_models: ``default_models(modality, models_dir[, echo_mode=...]) -> (seg, qc | None)``
            (``echo_mode`` is passed only when an echo mode is known).
        demo_source_spec: ``() -> str``, the shipped demo recording.
        echo_mode: ``echo_mode(source, "auto") -> EchoMode | None``: contrast or B-mode echo for an
            opened source (``app.engine.sources.echo_mode_of``); None: the echo mode is not
            detected (only the user's override in the Models panel sets one).
        missing: Why each part left None is missing (part name -> message), shown to the user.
    """

    open_source: Callable[..., Any] | None = None
    player: Callable[..., Any] | None = None
    pipeline: Callable[..., Any] | None = None
    list_models: Callable[..., Any] | None = None
    default_models: Callable[..., Any] | None = None
    demo_source_spec: Callable[[], str] | None = None
    echo_mode: Callable[..., Any] | None = None
    missing: dict[str, str] = field(default_factory=dict)

    @classmethod
    def real(cls) -> "EnginePort":
        """Bind ``app.engine`` (imported here: onnxruntime loads only when the real engine is wanted)."""
        from app.engine.models import default_models, list_models
        from app.engine.pipeline import Pipeline
        from app.engine.player import Player
        from app.engine.sources import demo_source_spec, echo_mode_of, open_source

        return cls(open_source=open_source, player=Player, pipeline=Pipeline, list_models=list_models,
                   default_models=default_models, demo_source_spec=demo_source_spec, echo_mode=echo_mode_of)


class FrameRelay:
    """Stands in for the pipeline when no model is loaded: frames are shown as they are.

    Runs on the player's thread (``submit`` is the player's sink), so the GUI thread still never
    converts frames. Has the pipeline's interface (``submit``, ``stats``, ``set_overlay``, ...)
    so the viewer treats both alike.
    """

    MAX_RAW_FPS = 120.0

    def __init__(self, on_result: Callable[[FrameResult], None], deadline_ms: float = REALTIME.p95_ms):
        from app.engine.overlay import to_rgb

        self._to_rgb = to_rgb
        self._on_result = on_result
        self._stats = StatsRecorder(deadline_ms)
        self._closed = False
        self._last_submit = 0.0

    def submit(self, frame: Frame) -> None:
        self._last_submit = time.perf_counter()
        if self._closed:
            return
        self._stats.frame_in()
        result = FrameResult(frame=frame, mask=None, overlay=self._to_rgb(frame.image),
                             timestamps={"arrival": frame.t_arrival})
        result.timestamps["overlay"] = time.perf_counter_ns()
        self._stats.frame_done(result)
        self._on_result(result)

    def set_overlay(self, style) -> None:  # nothing to draw
        pass

    def stats(self):
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def drain(self, timeout: float | None = None) -> bool:
        return True

    def wait_slot(self, timeout: float | None = None) -> bool:
        """Unpaced playback without a model: cap raw frames at ``MAX_RAW_FPS`` (more is never seen)."""
        wait = self._last_submit + 1.0 / self.MAX_RAW_FPS - time.perf_counter()
        if wait > 0:
            time.sleep(min(wait, timeout if timeout is not None else wait))
        return True

    def close(self) -> None:
        self._closed = True
