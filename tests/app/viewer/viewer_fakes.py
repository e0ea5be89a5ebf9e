"""Small fakes with the engine's API (``app.viewer.engine_port.EnginePort``) so viewer tests run without models.

``FakeSource`` yields synthetic frames (a bright disc on a dark background), ``FakePlayer`` reads
it on a thread (unpaced or paced), ``FakePipeline`` segments by threshold on its own worker
thread with newest-frame-wins and reports a scripted predicted Dice per frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from app.cards import ModelCard
from app.data.case import DataError
from app.engine.overlay import OverlayStyle, compose
from app.engine.stats import StatsRecorder
from app.engine.types import Frame, FrameResult, SourceInfo
from app.viewer.engine_port import EnginePort


class FakeSource:
    def __init__(self, name: str, modality: str | None = "echo", n_frames: int | None = 40, n_slices: int = 1,
                 size: int = 48, frame_rate: float | None = 30.0):
        self.info = SourceInfo(name=name, modality=modality, frame_rate=frame_rate, n_frames=n_frames,
                               n_slices=n_slices)
        self.seekable = n_frames is not None
        self.size = size
        self._pos = 0
        self.slice = 0
        self.closed = False
        self._lock = threading.Lock()

    def image(self, index: int) -> np.ndarray:
        yy, xx = np.mgrid[: self.size, : self.size]
        c = self.size / 2 + 6 * np.sin(index / 5.0)
        disc = (yy - c) ** 2 + (xx - self.size / 2) ** 2 < (self.size / 4) ** 2
        return np.where(disc, 200, 30).astype(np.uint8)

    def __iter__(self):
        while not self.closed:
            with self._lock:
                i = self._pos
                if self.info.n_frames is not None and i >= self.info.n_frames:
                    return
                self._pos += 1
            yield Frame(index=i, image=self.image(i), t_arrival=time.perf_counter_ns(), meta={"slice": self.slice})

    def seek(self, index: int) -> None:
        with self._lock:
            self._pos = int(index)

    def set_slice(self, z: int) -> None:
        if not 0 <= z < self.info.n_slices:
            raise ValueError(f"slice {z} out of range 0..{self.info.n_slices - 1}")
        self.slice = z

    def close(self) -> None:
        self.closed = True


class FakePlayer:
    instances: list["FakePlayer"] = []

    def __init__(self, source, sink, *, paced=True, speed=1.0, loop=False, on_end=None, on_error=None):
        self.source, self.sink, self.paced, self.speed, self.loop = source, sink, paced, speed, loop
        self.on_end, self.on_error = on_end, on_error
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._steps = threading.Semaphore(0)
        self._position = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        FakePlayer.instances.append(self)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                it = iter(self.source)
                delivered = False
                for frame in it:
                    while self._paused.is_set() and not self._stop.is_set():
                        if self._steps.acquire(timeout=0.01):
                            break
                    if self._stop.is_set():
                        return
                    self._position = frame.index
                    self.sink(frame)
                    delivered = True
                    if self.paced and self.source.info.frame_rate:
                        time.sleep(1.0 / (self.source.info.frame_rate * self.speed))
                    else:
                        time.sleep(0.002)  # unpaced, but gentle on a shared 2-core CI machine
                if not self.loop or not delivered:
                    if self.on_end:
                        self.on_end()
                    return
                self.source.seek(0)
        except Exception as exc:  # reported like the real player
            if self.on_error:
                self.on_error(exc)

    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def step(self) -> None:
        self._steps.release()

    def seek(self, index: int) -> None:
        self.source.seek(index)

    def set_speed(self, speed: float) -> None:
        self.speed = speed

    def set_loop(self, loop: bool) -> None:
        self.loop = loop

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def position(self) -> int:
        return self._position


@dataclass
class Script:
    """What the fake pipeline reports: predicted Dice per frame, frames that fail."""

    dice: Callable[[int], float] = lambda i: 0.9
    fail_on: set[int] = field(default_factory=set)


class FakePipeline:
    instances: list["FakePipeline"] = []

    def __init__(self, seg, qc=None, *, on_result=None, overlay=None, deadline_ms=50.0, intra_op_threads=None,
                 script: Script | None = None):
        self.seg, self.qc, self.on_result = seg, qc, on_result
        self.style = overlay or OverlayStyle()
        self.script = script or Script()
        self.stats_recorder = StatsRecorder(deadline_ms)
        self._cv = threading.Condition()
        self._pending: Frame | None = None
        self._closed = False
        self.submitted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        FakePipeline.instances.append(self)

    def submit(self, frame: Frame) -> None:
        self.stats_recorder.frame_in()
        with self._cv:
            if self._pending is not None:
                self.stats_recorder.frame_dropped()
            self._pending = frame
            self.submitted += 1
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                frame, self._pending = self._pending, None
            ts = {"arrival": frame.t_arrival, "preprocessed": time.perf_counter_ns()}
            mask = (frame.image > 128).astype(np.uint8)
            ts["segmented"] = time.perf_counter_ns()
            error = "fake inference failed" if frame.index in self.script.fail_on else None
            dice = None if self.qc is None or error else float(self.script.dice(frame.index))
            ts["qc"] = time.perf_counter_ns()
            overlay = compose(frame.image, mask, self.style)
            ts["overlay"] = time.perf_counter_ns()
            result = FrameResult(frame=frame, mask=None if error else mask, predicted_dice=dice, overlay=overlay,
                                 timestamps=ts, error=error)
            self.stats_recorder.frame_done(result)
            if self.on_result:
                self.on_result(result)

    def set_overlay(self, style: OverlayStyle) -> None:
        self.style = style

    def stats(self):
        return self.stats_recorder.snapshot()

    def reset_stats(self) -> None:
        self.stats_recorder.reset()

    def drain(self, timeout=None) -> bool:
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(2.0)


BMODE_CLASSES = {"0": "background", "1": "lv", "2": "myocardium", "3": "la"}  # the B-mode cards' (CAMUS) labels


def make_card(models_dir: Path, model_id: str, modality: str = "echo", role: str = "seg", method: str = "segqc-hw",
              dice: float = 0.85, p50: float = 20.0, pairs_with: str | None = None,
              echo_mode: str | None = None) -> ModelCard:
    raw = {"id": model_id, "modality": modality, "role": role, "method": method,
           "input": {"name": "image", "shape": [1, 1, 64, 64]}, "outputs": [],
           "classes": BMODE_CLASSES if echo_mode == "bmode" else {"0": "background", "1": "myocardium"}
           if modality == "echo" else {"0": "background", "1": "RV", "2": "MYO", "3": "LV"},
           "metrics": {"dice": {"mean": dice}, "latency_ms": {"p50": p50, "p95": p50 * 1.2}, "fps": 1000 / p50,
                       "hardware": "test CPU", "runtime": "fake"},
           "data": {}, "onnx_sha256": "0" * 64}
    if pairs_with:
        raw["pairs_with"] = pairs_with
    if echo_mode:
        raw["echo_mode"] = echo_mode
    path = models_dir / f"{model_id}.json"
    return ModelCard(raw=raw, card_path=path, onnx_path=path.with_suffix(".onnx"))


def fake_cards(models_dir: Path) -> list[ModelCard]:
    return [
        make_card(models_dir, "echo-searched", pairs_with="echo-qc"),
        make_card(models_dir, "echo-baseline", method="baseline-unet", dice=0.80, p50=42.0, pairs_with="echo-qc"),
        make_card(models_dir, "echo-qc", role="qc"),
        make_card(models_dir, "cine-searched", modality="cine", method="msnas-hw", pairs_with="cine-qc"),
        make_card(models_dir, "cine-qc", modality="cine", role="qc"),
    ]


def bmode_cards(models_dir: Path) -> list[ModelCard]:
    """A B-mode echo pair (the search's ``echo-bmode-segqc-hw-seg`` / ``-qc`` to come)."""
    return [make_card(models_dir, "echo-bmode-seg", pairs_with="echo-bmode-qc", echo_mode="bmode"),
            make_card(models_dir, "echo-bmode-qc", role="qc", echo_mode="bmode")]


class FakeEngine:
    """Builds an ``EnginePort`` over the fakes; records what was asked for.

    ``bmode_models``: add a B-mode echo pair to the cards. ``detect_echo``: the port tells contrast
    from B-mode by the spec (``bmode:N`` is a B-mode echo recording, other echo specs contrast).
    """

    def __init__(self, models_dir: Path, script: Script | None = None, paced: bool = False,
                 bmode_models: bool = False, detect_echo: bool = False):
        self.cards = fake_cards(models_dir) + (bmode_cards(models_dir) if bmode_models else [])
        self.detect_echo = detect_echo
        self.echo_asked: list[str] = []
        self.script = script or Script()
        self.paced = paced
        self.opened: list[str] = []
        self.sources: list[FakeSource] = []

    def open_source(self, spec: str, **options) -> FakeSource:
        self.opened.append(spec)
        if spec.startswith("bad:"):
            raise DataError(spec[4:], "not a DICOM file (no DICM preamble)")
        kind, _, rest = spec.partition(":")
        if kind == "live":
            src = FakeSource(spec, modality=None, n_frames=None, frame_rate=None)
        elif kind == "cine":
            src = FakeSource(spec, modality="cine", n_slices=3)
        else:
            src = FakeSource(spec, modality="echo", n_frames=int(rest) if rest.isdigit() else 40)
        self.sources.append(src)
        return src

    def list_models(self, modality=None, models_dir=None):
        return [c for c in self.cards if modality is None or c.modality == modality]

    def default_models(self, modality, models_dir=None, echo_mode=None):
        segs = [c for c in self.cards if c.modality == modality and c.role == "seg"]
        seg = next((c for c in segs if echo_mode is None or c.echo_mode == echo_mode), segs[0])
        qc = next((c for c in self.cards if c.id == seg.pairs_with), None)
        return seg, qc

    def echo_mode(self, source, requested="auto"):
        from app.data.echo_mode import EchoMode

        self.echo_asked.append(source.info.name)
        if source.info.modality != "echo":
            return None
        if source.info.name.startswith("bmode:"):
            return EchoMode("bmode", "B-mode echo: the fake detector says so")
        return EchoMode("contrast", "contrast echo: the fake detector says so")

    def player(self, source, sink, **kwargs):
        kwargs["paced"] = kwargs.get("paced", True) and self.paced
        return FakePlayer(source, sink, **kwargs)

    def pipeline(self, seg, qc=None, **kwargs):
        return FakePipeline(seg, qc, script=self.script, **kwargs)

    def port(self, **overrides) -> EnginePort:
        port = EnginePort(open_source=self.open_source, player=self.player, pipeline=self.pipeline,
                          list_models=self.list_models, default_models=self.default_models,
                          demo_source_spec=lambda: "echo:60",
                          echo_mode=self.echo_mode if self.detect_echo else None)
        for k, v in overrides.items():
            setattr(port, k, v)
        return port
