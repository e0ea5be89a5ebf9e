"""The real-time pipeline: preprocess -> segment -> QC -> overlay, newest frame wins.

Two worker threads with bounded hand-overs:

    submit() --[pending slot, 1 frame: newer replaces older, drop counted]--> inference worker
        (preprocess, segment, QC, mask, overlay: the timed path, one thread, no hand-off inside)
        --[queue of 2]--> delivery worker (Dice against ground truth, statistics, ``on_result``)

``submit`` never blocks. The inference worker always takes the newest frame; the delivery
worker keeps a slow ``on_result`` callback from delaying the next inference (until its queue of
2 is full: then the inference worker waits, and newer frames replace the pending one). Every
stage is timestamped with ``time.perf_counter_ns``; end-to-end latency is ``overlay - arrival``.

Streaming cine models (card ``streaming``) must see every frame, in order, also the ones whose
overlay is dropped: a frame replaced in the pending slot goes to a backlog instead of vanishing,
and the inference worker first advances the model's state through the backlog (oldest first, a
cheap call each: about 1/T of a clip), then segments the newest frame as usual. See
``Pipeline._infer_loop`` for why the streaming calls run there and not in ``submit``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Callable

import cv2
import numpy as np

from app.cards import ModelCard
from app.engine.models import load_model
from app.engine.overlay import OverlayStyle, compose
from app.engine.stages import QcStage, Segmentation, SegStage, mask_at
from app.engine.stats import PipelineStats, StatsRecorder
from app.engine.types import Frame, FrameResult
from app.metrics import ClassMatch, match_classes
from app.realtime import REALTIME

log = logging.getLogger(__name__)

_STOP = object()
STREAM_BACKLOG = 256
"""Most frames a streaming model may fall behind; beyond it the oldest go and the state restarts (gap)."""


class Pipeline:
    """Segmentation + QC + overlay on worker threads for a stream of frames.

    Args:
        seg: Segmentation model card (verified and warmed up here).
        qc: Its QC model card, or None.
        on_result: Called with each ``FrameResult`` on the delivery worker thread (keep it quick).
        overlay: Overlay style (None: the default style).
        deadline_ms: End-to-end latency budget per frame (misses are counted).
        intra_op_threads: onnxruntime threads per operator (default: the runtime's choice).
        window: Frames in the rolling statistics window.
        ground_truth_labels: The source's label map (``SourceInfo.label_map``): the true Dice then
            scores the model's classes against the ground truth's by name (``app.metrics.match_classes``);
            empty or None compares labels by number. ``set_ground_truth_labels`` changes it.

    Raises:
        ModelCardError: A model file missing or not matching its card.
    """

    def __init__(self, seg: ModelCard, qc: ModelCard | None = None, *,
                 on_result: Callable[[FrameResult], None] | None = None,
                 overlay: OverlayStyle | None = None, deadline_ms: float = REALTIME.p95_ms,
                 intra_op_threads: int | None = None, window: int = 300,
                 ground_truth_labels: dict[int, str] | None = None):
        self.seg_card = seg
        self.qc_card = qc
        self._seg = SegStage(load_model(seg, intra_op_threads=intra_op_threads))
        self._qc = QcStage(load_model(qc, intra_op_threads=intra_op_threads)) if qc is not None else None
        self._classes: ClassMatch = match_classes(seg.classes, ground_truth_labels)
        self._on_result = on_result
        self._style = overlay or OverlayStyle()
        self._stats = StatsRecorder(deadline_ms=deadline_ms, window=window)
        self._cond = threading.Condition()
        self._pending: tuple[Frame, tuple | None] | None = None
        # Streaming models: frames replaced in the pending slot, still to be fed to the state (oldest first).
        self._backlog: deque[Frame] = deque(maxlen=STREAM_BACKLOG)
        self._in_flight = 0
        self._closed = False
        self._reset_requested = False
        self._delivery: queue.Queue = queue.Queue(maxsize=2)
        self._workers = [
            threading.Thread(target=self._infer_loop, name="pipeline-infer", daemon=True),
            threading.Thread(target=self._deliver_loop, name="pipeline-deliver", daemon=True),
        ]
        for worker in self._workers:
            worker.start()

    # -- public API ---------------------------------------------------------------------------
    def submit(self, frame: Frame) -> None:
        """Hand a frame to the pipeline; never blocks. A frame still waiting is replaced (dropped)."""
        clip = self._seg.observe(frame)
        with self._cond:
            if self._closed:
                return
            self._stats.frame_in()
            if self._pending is not None:
                self._stats.frame_dropped()
                if self._seg.is_streaming:  # its overlay is dropped, but the state must still see it
                    self._backlog.append(self._pending[0])
            self._pending = (frame, clip)
            self._cond.notify_all()

    def reset_stream(self) -> None:
        """Streaming models: restart the state with the next frame (e.g. the caller changed the source).

        Seeks, slice changes and a new source's frames (index not the previous + 1) are detected from
        the frames themselves; this is for a change they cannot show.
        """
        with self._cond:
            self._backlog.clear()
            self._reset_requested = True

    def set_overlay(self, style: OverlayStyle) -> None:
        """Change the overlay style from the next composed frame on."""
        self._style = style

    def set_ground_truth_labels(self, label_map: dict[int, str] | None) -> None:
        """The ground truth's label map of the frames from now on (e.g. a new source); None: by number."""
        self._classes = match_classes(self.seg_card.classes, label_map)  # one reference swap: thread-safe

    @property
    def class_match(self) -> ClassMatch:
        """How the true Dice matches the model's classes to the ground truth's (scored, not scored)."""
        return self._classes

    @property
    def overlay_style(self) -> OverlayStyle:
        return self._style

    def stats(self) -> PipelineStats:
        """A snapshot of the counters and rolling figures (thread-safe)."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and the rolling window (e.g. after warm-up or a seek)."""
        self._stats.reset()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no frame is pending or in flight. Returns False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._in_flight > 0:
                if self._closed:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.1)
        return True

    def wait_slot(self, timeout: float | None = None) -> bool:
        """Wait until the pending slot is empty (the worker took the last frame). False on timeout.

        Lossless throughput runs (``replay --fast``) call this before each ``submit``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.1)
            return not self._closed

    def close(self) -> None:
        """Stop the workers (frames in flight are finished or abandoned); idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        self._workers[0].join(timeout=10.0)
        self._put(_STOP)
        self._workers[1].join(timeout=10.0)

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- workers ------------------------------------------------------------------------------
    def _put(self, item) -> None:
        while True:
            try:
                self._delivery.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._workers[1].is_alive():
                    return

    def _infer_loop(self) -> None:
        # Streaming models run here, on the one inference worker, and not in ``submit``: ``submit`` runs
        # on the source's (player's) thread and must never block it (a paced source keeps its own clock,
        # a live one must not stall), and a second thread running onnxruntime at the same time would
        # fight this worker for the 2 cores. The order is kept because ``submit`` is called in arrival
        # order and puts each frame into the backlog / pending slot under ``_cond``; this worker takes
        # the backlog and the newest frame together under the same lock and steps them oldest first;
        # and it is the only thread that touches the state (``SegStage.advance``).
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                frame, clip = self._pending
                self._pending = None
                backlog = list(self._backlog)
                self._backlog.clear()
                if self._reset_requested:
                    self._reset_requested = False
                    self._seg.reset_stream()
                self._in_flight += 1
                self._cond.notify_all()
            self._put(self._process(frame, clip, backlog))

    def _catch_up(self, backlog: list[Frame]) -> None:
        """Streaming models: feed the state the frames whose overlay was dropped (oldest first)."""
        for old in backlog:
            try:
                self._seg.advance(old)
            except Exception as exc:  # the state restarts at the next frame (the sequence is broken)
                log.warning("frame %d: streaming step failed: %s", old.index, exc)

    def _process(self, frame: Frame, clip: tuple | None, backlog: list[Frame] | None = None) -> FrameResult:
        """Every timed stage of one frame, on the inference worker (no thread hand-off inside)."""
        stamps = {"arrival": frame.t_arrival, "started": time.perf_counter_ns()}  # started: the worker took it
        seg: Segmentation | None = None
        mask = overlay = predicted = error = None
        try:
            x = self._seg.prepare(frame, clip)
            stamps["preprocessed"] = time.perf_counter_ns()
            if backlog:  # streaming: the dropped frames' steps are inference time of this frame
                self._catch_up(backlog)
            seg = self._seg.segment(x, frame) if self._seg.is_streaming else self._seg.segment(x)
            stamps["segmented"] = time.perf_counter_ns()
            if self._qc is not None:
                predicted = self._qc.run(seg)
            stamps["qc"] = time.perf_counter_ns()
            height, width = frame.image.shape[:2]
            mask = mask_at(seg.probs, height, width)
            overlay = compose(frame.image, mask, self._style)
        except Exception as exc:  # one bad frame must not stop the stream
            error = f"{type(exc).__name__}: {exc}"
            log.warning("frame %d failed: %s", frame.index, error)
        stamps["overlay"] = time.perf_counter_ns()
        if error is not None:
            return FrameResult(frame=frame, mask=None, timestamps={"arrival": stamps["arrival"], "overlay": stamps["overlay"]},
                               error=error)
        return FrameResult(frame=frame, mask=mask, probabilities=seg.probs[0], predicted_dice=predicted,
                           overlay=overlay, timestamps=stamps)

    def _deliver_loop(self) -> None:
        """Off the timed path: Dice against ground truth, statistics, the consumer's callback."""
        while True:
            result = self._delivery.get()
            if result is _STOP:
                return
            if result.mask is not None and result.frame.ground_truth is not None:
                try:
                    result.true_dice = self._true_dice(result.mask, result.frame.ground_truth)
                except ValueError as exc:
                    log.warning("frame %d: ground truth unusable: %s", result.frame.index, exc)
            self._stats.frame_done(result)
            if self._on_result is not None:
                try:
                    self._on_result(result)
                except Exception:  # a consumer's bug is logged, never kills the pipeline
                    log.exception("on_result callback failed for frame %d", result.frame.index)
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _true_dice(self, mask: np.ndarray, gt: np.ndarray) -> float | None:
        if gt.shape != mask.shape:
            mask = cv2.resize(mask, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        value = self._classes.mean_dice(mask, gt)
        return None if np.isnan(value) else float(value)
