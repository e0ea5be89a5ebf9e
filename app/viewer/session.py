"""The session controller: one source, one player, one pipeline, and the signals the window shows.

It owns the engine objects and every thread hand-over; widgets only see its signals:

* opening a source (and telling contrast from B-mode echo, once per recording), loading a model
  and tearing old objects down run as ``Worker`` jobs (never
  on the GUI thread). Opens and model loads go through a one-thread pool, so they complete in the
  order they were asked for; tear-downs go through another pool so a live device that is slow
  to let go never delays the next open;
* the player thread feeds ``_sink``, which forwards to whichever pipeline is current, so the
  model can be switched live without stopping playback;
* the pipeline's ``on_result`` (a worker thread) goes to the recorder and to the
  ``ResultBridge``, which delivers only the newest result to the GUI at a throttled rate.
  Results of a pipeline that has since been replaced are ignored (a generation number).

Echo recordings are contrast or B-mode echo (``app.data.echo_mode``): the mode in effect is the
user's override (``ViewerState.echo_mode_choice``) or else the one detected at open, and the default
model pair is one made for it; changing the override re-selects the pair.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from PyQt6.QtCore import QObject, QThreadPool, QTimer, pyqtSignal

from app.data.echo_mode import MODE_NAMES, EchoMode
from app.engine.types import FrameResult
from app.realtime import REALTIME
from app.viewer.bridge import ResultBridge
from app.viewer.engine_port import EnginePort, FrameRelay
from app.viewer.model_loading import LoadedModels, load_models
from app.viewer.quality import QualityMonitor
from app.viewer.recording import SessionRecorder, new_session_folder
from app.viewer.state import ViewerState, choice_key
from app.viewer.workers import Worker

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """One line for the status bar: the engine's errors already name the file and the problem."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@dataclass(frozen=True)
class EchoModeStatus:
    """What the Models panel shows about contrast / B-mode echo.

    Attributes:
        choice: The user's ``auto`` / ``contrast`` / ``bmode``.
        mode: The echo mode in effect (None: not an echo source, or not known).
        reason: Why, in words.
        detected: What detection found for this recording (None: not run).
        model_mode: The echo mode of the running segmentation model (None: none running, or cine).
        note: The running model was not made for ``mode`` (no model of that mode, or the user's pick).
        applies: The source is echo (cine has no echo mode).
    """

    choice: str
    mode: str | None
    reason: str
    detected: EchoMode | None
    model_mode: str | None
    note: str | None
    applies: bool = True


class SessionController(QObject):
    """Drives the engine for the window.

    Signals:
        source_opened(SourceInfo), source_failed(str): after ``open_source``.
        models_listed(str, list): modality and its segmentation ``ModelCard``s.
        model_loaded(seg | None, qc | None): the pipeline now running (None, None: raw frames).
        frame_ready(FrameResult, list[FrameSummary]): throttled, newest result only.
        stats_updated(PipelineStats): a few times per second while a pipeline runs.
        quality_alert(bool): the "quality stays low" alert was raised (True) or cleared (False).
        playback_changed(bool): paused or not.
        ended(): a recording reached its end (without loop).
        error(str): something failed; the message names what and why.
        recording_changed(object): the session folder being recorded to, or None.
        echo_mode_changed(EchoModeStatus): the echo mode in effect, its reason and the model's fit.

    Args:
        engine: The engine's factories (``EnginePort.real()`` or fakes).
        state: The viewer state (overlay, speed, loop, slice, model choices).
        models_dir: Folder of models (None: the engine's default ``models/``).
        deadline_ms: Latency deadline given to the pipeline.
        max_display_fps: Upper bound on paints per second.
    """

    source_opened = pyqtSignal(object)
    source_failed = pyqtSignal(str)
    models_listed = pyqtSignal(str, list)
    model_loaded = pyqtSignal(object, object)
    frame_ready = pyqtSignal(object, object)
    stats_updated = pyqtSignal(object)
    quality_alert = pyqtSignal(bool)
    playback_changed = pyqtSignal(bool)
    ended = pyqtSignal()
    error = pyqtSignal(str)
    recording_changed = pyqtSignal(object)
    echo_mode_changed = pyqtSignal(object)
    _player_ended = pyqtSignal(int)
    _player_failed = pyqtSignal(int, object)

    def __init__(self, engine: EnginePort, state: ViewerState, *, models_dir: Any = None,
                 deadline_ms: float = REALTIME.p95_ms, max_display_fps: float = 60.0, parent: QObject | None = None):
        super().__init__(parent)
        self.engine, self.state, self.models_dir, self.deadline_ms = engine, state, models_dir, deadline_ms
        self._jobs = QThreadPool(self)
        self._jobs.setMaxThreadCount(1)
        self._teardown = QThreadPool(self)
        self._teardown.setMaxThreadCount(2)
        self._workers: set[Worker] = set()
        self.bridge = ResultBridge(max_display_fps, parent=self)
        self.bridge.display.connect(self._on_display)
        self.quality = QualityMonitor(state.thresholds)
        self.source = None
        self.info = None
        self.player = None
        self.pipeline = None
        self.seg_card = None
        self.qc_card = None
        self.cards: list = []
        self.detected_echo: EchoMode | None = None  # this recording's, found when it was opened
        self.echo_note: str | None = None  # the running model does not fit the echo mode
        self._models_echo_mode: str | None = None  # the echo mode the running pipeline was chosen for
        self.recorder: SessionRecorder | None = None
        self.ended_at_end = False
        self.last_result: FrameResult | None = None
        self._generation = 0
        self._last_generation = 0
        self._player_gen = 0
        self._paced = True
        self._closed = False
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(250)
        self._stats_timer.timeout.connect(self._emit_stats)
        self._stats_timer.start()
        self._player_ended.connect(self._on_player_ended)
        self._player_failed.connect(self._on_player_failed)
        state.overlay_changed.connect(self._on_overlay)
        state.speed_changed.connect(self._on_speed)
        state.loop_changed.connect(lambda loop: self.player is not None and self.player.set_loop(loop))
        state.slice_changed.connect(self._on_slice)
        state.thresholds_changed.connect(self._on_thresholds)
        state.echo_mode_choice_changed.connect(self._on_echo_choice)

    # -- jobs ---------------------------------------------------------------------------------
    def _run(self, pool: QThreadPool, fn: Callable, *args, on_done: Callable | None = None,
             on_error: Callable | None = None) -> Worker:
        worker = Worker(fn, *args)
        self._workers.add(worker)
        if on_done is not None:
            worker.signals.returned.connect(on_done)
        worker.signals.errored.connect(on_error or (lambda exc: self.error.emit(describe_error(exc))))
        worker.signals.finished.connect(lambda w=worker: self._workers.discard(w))
        return worker.start(pool)

    def busy(self) -> bool:
        """True while an open or a model load is running."""
        return self._jobs.activeThreadCount() > 0

    # -- sources ------------------------------------------------------------------------------
    def open_source(self, spec: str) -> None:
        """Open ``spec`` (a path, ``phantom:echo``, ``camera:0``, ``igtl://host:port``) on a worker."""
        if self.engine.open_source is None or self.engine.player is None:
            why = self.engine.missing.get("open_source") or self.engine.missing.get("player")
            self.source_failed.emit(f"cannot open {spec}: the engine's frame sources are not available ({why})")
            return
        self._run(self._jobs, self._open_job, spec, on_done=self._on_source_opened,
                  on_error=lambda exc: self.source_failed.emit(describe_error(exc)))

    def _open_job(self, spec: str) -> tuple[Any, EchoMode | None]:
        """Worker thread: open the source and, for echo, tell contrast from B-mode (once per recording)."""
        source = self.engine.open_source(spec)
        detected = None
        if self.engine.echo_mode is not None and source.info.modality in ("echo", None):
            try:
                detected = self.engine.echo_mode(source, "auto")
            except Exception as exc:  # detection is a hint: the recording still plays, as contrast echo
                why = describe_error(exc)
                log.warning("%s: could not tell contrast from B-mode echo (%s)", source.info.name, why)
                detected = EchoMode("contrast", f"{MODE_NAMES['contrast']} assumed: detection failed ({why})")
        return source, detected

    def _on_source_opened(self, opened) -> None:
        source, detected = opened if isinstance(opened, tuple) else (opened, None)
        if self._closed:
            self._teardown_later(source=source)
            return
        self._teardown_later(player=self.player, source=self.source)
        self.player = None
        self.source, self.info = source, source.info
        self.ended_at_end = False
        self.last_result = None
        self.quality.reset()
        self.bridge.clear()
        modality = source.info.modality or self.state.modality
        self.detected_echo = detected
        echo = self.echo_mode(modality)
        model_ready = (self.seg_card is not None and self.seg_card.modality == modality
                       and (modality != "echo" or (echo.mode if echo else None) == self._models_echo_mode))
        if not model_ready:
            self._install_relay()
        self._share_ground_truth_labels()
        self.state.set_modality(modality)
        self.state.set_slice(int(getattr(source, "slice_index", 0)))
        self._start_player(position=0)
        if self.recorder is not None:
            self.recorder.log_event("source_opened", name=source.info.name, modality=modality,
                                    echo_mode=echo.mode if echo else None)
        self.source_opened.emit(source.info)
        self._emit_echo_status()
        if not model_ready:
            self.load_models(modality)

    def _start_player(self, position: int = 0, paused: bool = False) -> None:
        try:
            self._create_player(position, paused)
        except Exception as exc:  # a player that cannot start is reported; the window stays up
            self.player = None
            self.error.emit(f"cannot play {self.info.name if self.info else 'the source'}: {describe_error(exc)}")
            self.playback_changed.emit(True)

    def _create_player(self, position: int, paused: bool) -> None:
        self._player_gen += 1
        gen = self._player_gen
        speed = self.state.speed
        paced = math.isfinite(speed)
        self._paced = paced
        self.player = self.engine.player(
            self.source, self._sink, paced=paced, speed=speed if paced else 1.0, loop=self.state.loop,
            on_end=lambda g=gen: self._player_ended.emit(g),
            on_error=lambda exc, g=gen: self._player_failed.emit(g, exc))
        n_frames = self.info.n_frames if self.info is not None else None
        if n_frames and position >= n_frames:
            position = 0
        if getattr(self.source, "seekable", False):
            self.player.seek(position)  # also 0: a replay after the end starts from the top
        self.player.start()
        if paused:
            self.player.pause()
        self.playback_changed.emit(paused)

    def _sink(self, frame) -> None:
        """The player's sink (player thread): forward to the current pipeline.

        Paced (the scanner's own rate, or live): submit and return; when inference is slower, the
        pipeline keeps the newest frame and counts the drop. Unpaced ("max"): wait until the
        pipeline has taken the previous frame (as ``replay --fast`` does), so every frame is
        processed, decoding overlaps inference, and the player does not spin decoding frames that
        would only be dropped (a spinning Python thread holds the GIL the GUI thread needs).
        """
        pipeline = self.pipeline
        if pipeline is None:
            return
        if not self._paced:
            wait = getattr(pipeline, "wait_slot", None) or pipeline.drain
            wait(timeout=1.0)
        pipeline.submit(frame)

    def _on_player_ended(self, gen: int) -> None:
        if gen == self._player_gen:
            self.ended_at_end = True
            self.playback_changed.emit(True)
            self.ended.emit()

    def _on_player_failed(self, gen: int, exc: object) -> None:
        if gen == self._player_gen:
            self.error.emit(f"source stopped: {describe_error(exc)}")
            self.playback_changed.emit(True)

    # -- models -------------------------------------------------------------------------------
    def load_models(self, modality: str | None = None, model_id: str | None = None) -> None:
        """List the models of ``modality`` and load ``model_id`` (default: the user's pick, else the shipped one)."""
        modality = modality or self.state.modality
        if self.engine.list_models is None or self.engine.pipeline is None:
            why = self.engine.missing.get("pipeline") or self.engine.missing.get("list_models")
            self.error.emit(f"no model: the engine's pipeline is not available ({why})")
            self.model_loaded.emit(None, None)
            return
        echo = self.echo_mode(modality)
        echo_mode = echo.mode if echo is not None else None
        model_id = model_id or self.state.model_choice(choice_key(modality, echo_mode))
        gen = self._next_generation()
        self._run(self._jobs, self._load_models_job, modality, model_id, gen, echo_mode,
                  on_done=self._on_models_loaded, on_error=self._on_models_failed)

    def _load_models_job(self, modality: str, model_id: str | None, gen: int,
                         echo_mode: str | None = None) -> LoadedModels:
        """Worker thread: find the cards and build the pipeline (verifies hashes, loads ONNX)."""
        loaded = load_models(self.engine, modality, model_id, self.models_dir, on_result=self._results_for(gen),
                             overlay=self.state.overlay, deadline_ms=self.deadline_ms, generation=gen,
                             echo_mode=echo_mode)
        if self._closed and loaded.pipeline is not None:  # the window closed meanwhile: nobody will install it
            loaded.pipeline.close()
            loaded.pipeline = None
        return loaded

    def _on_models_loaded(self, loaded: LoadedModels) -> None:
        current = (self.info.modality or self.state.modality) if self.info is not None else loaded.modality
        if self._closed or loaded.modality != current:  # the source changed modality meanwhile
            self._teardown_later(pipeline=loaded.pipeline)
            return
        echo = self.echo_mode(current)
        if loaded.modality == "echo" and loaded.echo_mode != (echo.mode if echo else None) and self.info is not None:
            self._teardown_later(pipeline=loaded.pipeline)  # chosen for an echo mode no longer in effect
            return
        self.cards = loaded.segs
        self.models_listed.emit(loaded.modality, loaded.segs)
        if loaded.pipeline is None:
            self.error.emit(f"no model: {loaded.note} - showing raw frames")
            if not isinstance(self.pipeline, FrameRelay):
                self._install_relay()
            self.model_loaded.emit(None, None)
            return
        if loaded.note:
            self.error.emit(loaded.note)
        if loaded.echo_note and loaded.echo_note != self.echo_note:
            log.warning("%s", loaded.echo_note)
        self._models_echo_mode, self.echo_note = loaded.echo_mode, loaded.echo_note
        self._install(loaded.pipeline, loaded.seg, loaded.qc, loaded.generation)
        if loaded.echo_note is None or loaded.requested == loaded.seg.id:  # a fallback is not the user's pick
            self.state.set_model_choice(choice_key(loaded.modality, loaded.echo_mode), loaded.seg.id)
        self._emit_echo_status()

    def _on_models_failed(self, exc: object) -> None:
        self.error.emit(f"model not loaded: {describe_error(exc)}")
        if self.seg_card is not None:  # keep remembering the model that works
            self.state.set_model_choice(choice_key(self.seg_card.modality, self._models_echo_mode), self.seg_card.id)
        if self.pipeline is None:
            self._install_relay()
        self.model_loaded.emit(self.seg_card, self.qc_card)

    def _next_generation(self) -> int:
        self._last_generation += 1
        return self._last_generation

    def _install_relay(self) -> None:
        gen = self._next_generation()
        self._install(FrameRelay(self._results_for(gen), self.deadline_ms), None, None, gen)

    def _results_for(self, gen: int) -> Callable[[FrameResult], None]:
        def on_result(result: FrameResult) -> None:  # pipeline worker thread
            if gen != self._generation:
                return
            recorder = self.recorder
            if recorder is not None:
                recorder.submit(result)
            self.bridge.push(result)

        return on_result

    def _share_ground_truth_labels(self) -> None:
        """Tell the pipeline the source's label map: its true Dice matches classes by name (a contrast
        model's myocardium is scored against CAMUS MYO, not LV). Pipelines without it compare numbers."""
        setter = getattr(self.pipeline, "set_ground_truth_labels", None)
        if setter is None or self.info is None:
            return
        labelled = getattr(self.info, "has_ground_truth", False)
        setter(dict(getattr(self.info, "label_map", None) or {}) if labelled else None)

    def _install(self, pipeline, seg, qc, gen: int) -> None:
        old = self.pipeline
        self._generation = gen
        self.pipeline = pipeline
        self.seg_card, self.qc_card = seg, qc
        self._share_ground_truth_labels()
        self.quality.reset()
        self.bridge.clear()
        if old is not None and old is not pipeline:
            self._teardown_later(pipeline=old)
        if self.recorder is not None:
            self.recorder.set_model(seg.id if seg else None)
            self.recorder.log_event("model_loaded", model_id=seg.id if seg else None, qc_id=qc.id if qc else None)
        if seg is not None:
            self.model_loaded.emit(seg, qc)
        if self.player is not None and self.player.paused and self.last_result is not None:
            self.step()  # show the new model on the frame on screen

    def select_model(self, model_id: str) -> None:
        """Switch the segmentation model live (playback goes on)."""
        if self.seg_card is not None and model_id == self.seg_card.id:
            return
        echo = self.echo_mode(self.state.modality)
        self.state.set_model_choice(choice_key(self.state.modality, echo.mode if echo else None), model_id)
        self.load_models(self.state.modality, model_id)

    # -- echo mode ----------------------------------------------------------------------------
    def echo_mode(self, modality: str | None = None) -> EchoMode | None:
        """The echo mode in effect: the user's override, else this recording's detected one (None: cine,
        or an echo source whose mode nobody knows)."""
        modality = modality or (self.info.modality if self.info is not None else None) or self.state.modality
        if modality != "echo":
            return None
        choice = self.state.echo_mode_choice
        if choice in MODE_NAMES:
            found = f"; detected {MODE_NAMES[self.detected_echo.mode]}" if self.detected_echo is not None else ""
            return EchoMode(choice, f"{MODE_NAMES[choice]}: chosen in the Models panel{found}")
        return self.detected_echo

    def echo_status(self) -> EchoModeStatus:
        """What the Models panel shows about the echo mode."""
        modality = (self.info.modality if self.info is not None else None) or self.state.modality
        echo = self.echo_mode(modality)
        seg = self.seg_card
        return EchoModeStatus(
            choice=self.state.echo_mode_choice, mode=echo.mode if echo else None,
            reason=echo.reason if echo else "the echo mode of this recording is not known",
            detected=self.detected_echo, model_mode=getattr(seg, "echo_mode", None) if seg is not None else None,
            note=self.echo_note if seg is not None else None, applies=modality == "echo")

    def _emit_echo_status(self) -> None:
        self.echo_mode_changed.emit(self.echo_status())

    def _on_echo_choice(self, choice: str) -> None:
        """The user overrode the echo mode (or went back to auto): re-select the pair when the mode changed."""
        modality = (self.info.modality if self.info is not None else None) or self.state.modality
        echo = self.echo_mode(modality)
        if self.recorder is not None:
            self.recorder.log_event("echo_mode", choice=choice, mode=echo.mode if echo else None)
        self._emit_echo_status()
        if modality == "echo" and self.info is not None and (echo.mode if echo else None) != self._models_echo_mode:
            self.load_models(modality)

    # -- playback -----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self.player is None or self.player.paused or self.ended_at_end

    def play(self) -> None:
        if self.player is None:
            return
        if self.ended_at_end:
            self.ended_at_end = False
            self._restart_player(position=0)
            return
        self.player.resume()
        self.playback_changed.emit(False)

    def pause(self) -> None:
        if self.player is not None:
            self.player.pause()
            self.playback_changed.emit(True)

    def toggle_play(self) -> None:
        self.play() if self.paused else self.pause()

    def step(self) -> None:
        """Deliver exactly one next frame (pauses first)."""
        if self.player is None:
            return
        if not self.player.paused:
            self.pause()
        self.player.step()

    def seek(self, index: int) -> None:
        if self.player is not None and getattr(self.source, "seekable", False):
            self.player.seek(int(index))
            if self.player.paused:
                self.player.step()

    def _restart_player(self, position: int, paused: bool = False) -> None:
        """New player on the same source (pacing changed, or replay after the end)."""
        old = self.player
        self.player = None
        if old is not None:
            old.stop()  # same source: the old thread must let go before the new one reads
        self._start_player(position=position, paused=paused)

    def _on_speed(self, speed: float) -> None:
        if self.player is None:
            return
        if math.isfinite(speed) and self._paced:
            self.player.set_speed(speed)
        else:
            position = self.last_result.frame.index + 1 if self.last_result is not None else 0
            self._restart_player(position, paused=self.player.paused)

    def _on_slice(self, z: int) -> None:
        if self.source is None or (self.info is not None and self.info.n_slices <= 1):
            return
        try:
            self.source.set_slice(z)
        except (ValueError, IndexError) as exc:
            self.error.emit(describe_error(exc))
            return
        if self.player is not None and self.player.paused:
            self.player.step()

    def _on_overlay(self, style) -> None:
        if self.pipeline is not None:
            self.pipeline.set_overlay(style)

    def _on_thresholds(self, thresholds) -> None:
        self.quality.set_thresholds(thresholds)
        if self.recorder is not None:
            self.recorder.set_thresholds(thresholds)

    # -- display ------------------------------------------------------------------------------
    def _on_display(self, result: FrameResult, summaries: list) -> None:
        self.last_result = result
        for s in summaries:
            change = self.quality.update(s.predicted_dice)
            if change is not None:
                if self.recorder is not None:
                    self.recorder.log_event("quality_alert" if change else "quality_recovered",
                                            frame_index=s.index, predicted_dice=s.predicted_dice)
                self.quality_alert.emit(change)
        self.frame_ready.emit(result, summaries)

    def _emit_stats(self) -> None:
        if self.pipeline is not None:
            self.stats_updated.emit(self.pipeline.stats())

    # -- recording ----------------------------------------------------------------------------
    def start_recording(self, root) -> SessionRecorder:
        """Record from now on into a new session folder under ``root``."""
        if self.recorder is not None:
            return self.recorder
        meta = {"source": self.info.name if self.info else None,
                "modality": self.state.modality,
                "model_id": self.seg_card.id if self.seg_card else None,
                "echo_mode": self._models_echo_mode,
                "qc_id": self.qc_card.id if self.qc_card else None,
                "thresholds": asdict(self.state.thresholds)}
        self.recorder = SessionRecorder(new_session_folder(root), meta, thresholds=self.state.thresholds)
        self.recording_changed.emit(self.recorder.folder)
        return self.recorder

    def stop_recording(self, wait: bool = False) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        if wait:
            recorder.close()
        else:
            self._run(self._teardown, recorder.close)
        self.recording_changed.emit(None)

    # -- teardown -----------------------------------------------------------------------------
    def _teardown_later(self, player=None, source=None, pipeline=None) -> None:
        if player is None and source is None and pipeline is None:
            return

        def teardown() -> None:
            for obj, what in ((player, "stop"), (source, "close"), (pipeline, "close")):
                if obj is not None:
                    try:
                        getattr(obj, what)()
                    except Exception as exc:  # teardown problems are logged, not shown
                        log.warning("%s.%s() failed: %s", type(obj).__name__, what, exc)

        self._run(self._teardown, teardown)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop everything (window closing). Keeps what the recorder wrote. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stats_timer.stop()
        self._generation = -1
        self.stop_recording(wait=True)
        self._jobs.waitForDone(timeout_ms)
        self._teardown_later(player=self.player, source=self.source, pipeline=self.pipeline)
        self.player = self.source = self.pipeline = None
        self._teardown.waitForDone(timeout_ms)
