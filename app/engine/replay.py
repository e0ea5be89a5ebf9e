"""Headless replay for validation: a source through the pipeline, then a JSON report.

Paced at the source's own frame rate by default (the newest frame wins, as at the scanner), or
``fast``: every frame, as fast as the pipeline takes them (throughput). With ground truth the
report adds the mean Dice and the QC calibration (MAE and Pearson of predicted vs true Dice).
Optional outputs: the masks as NIfTI (rows, cols, time), a per-frame CSV and a latency CDF plot.

Everything that can be checked is checked before any work starts (output paths, arguments, the
model's role and modality). Outputs are written as the replay runs (``app.engine.replay_output``):
CSV rows and masks as frames come, the report every second (atomically, ``"complete": false``
until the end), so a replay that is stopped or killed keeps what it did. A ``StopRequest`` (set by
the CLI's SIGINT / SIGTERM handler) ends the replay like Ctrl-C: outputs are finished, the report
says ``"interrupted": true``.

Reports never carry the source's file name (it may hold the patient's name): the source is named
by its kind and a short hash of its resolved path, or by a label the user chose.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
import platform
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from app.cards import ModelCard, ModelCardError
from app.data.echo_mode import CHOICES as ECHO_CHOICES
from app.data.echo_mode import EchoMode
from app.engine.models import default_models, echo_mode_note, find_model, list_models, qc_for
from app.engine.pipeline import Pipeline
from app.engine.player import Player
from app.engine.replay_output import (CSV_COLUMNS, CSV_SUFFIXES, MASK_SUFFIXES, PLOT_SUFFIXES, REPORT_SUFFIXES,
                                      CsvRows, FrameRecord, MaskStream, OutputError, check_distinct,
                                      check_output_path, masks_volume, write_json_atomic, write_masks_nifti)
from app.engine.sources import echo_mode_of, open_source
from app.engine.stats import field_latency, trim_warmup
from app.engine.types import FrameResult
from app.metrics import NOT_SCORED_REASON, match_classes, qc_calibration
from app.realtime import REALTIME

log = logging.getLogger(__name__)

# Aliases of the one real-time rule (``app.realtime.REALTIME``), kept for bench/pipeline_bench.py.
REALTIME_P95_MS = REALTIME.p95_ms
REALTIME_FPS = REALTIME.fps
REPORT_EVERY_S = 1.0
_Record = FrameRecord  # the old private name
__all__ = ["replay", "summary_lines", "machine_description", "StopRequest", "ReplayArgumentError", "OutputError",
           "CSV_COLUMNS", "write_csv", "write_masks"]

_KIND_BY_CLASS = {"DicomSource": "dicom", "VideoFileSource": "video", "ImageFolderSource": "images",
                  "PhantomLiveSource": "phantom", "CaptureSource": "camera", "IgtlSource": "igtl"}
_SCHEMES = ("phantom:", "camera:", "igtl://")


class ReplayArgumentError(ValueError):
    """An argument that makes no sense (an empty SOURCE, ``max_frames`` <= 0, ...)."""


class StopRequest:
    """Ends a running replay as Ctrl-C does; safe to set from a signal handler (no lock taken).

    Attributes:
        reason: None until ``request`` is called, then e.g. ``"SIGTERM"`` (the first reason wins).
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str = "stop") -> None:
        if self.reason is None:
            self.reason = reason

    @property
    def requested(self) -> bool:
        return self.reason is not None


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``); None when unknown.

    Latencies, and even seeded training results, differ between CPU models of the same core count, so every
    figure names the model (issue 16: two 2-core hosts, an AMD EPYC and an Intel Xeon, differed 3-4x).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def machine_description() -> str:
    """E.g. ``"2-core x86_64 CPU (Intel(R) Xeon(R) Processor), onnxruntime 1.x CPU EP"`` (no host names)."""
    import onnxruntime as ort

    model = cpu_model()
    return (f"{os.cpu_count()}-core {platform.machine()} CPU{f' ({model})' if model else ''}, "
            f"onnxruntime {ort.__version__} CPU EP")


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


# -- checks before any work -------------------------------------------------------------------------
def check_request(source_spec, *, report, masks_out=None, csv_out=None, plot_out=None, max_frames=None,
                  deadline_ms: float = REALTIME.p95_ms, timeout_s: float | None = None, name: str | None = None) -> None:
    """Check the arguments and output paths of a replay before anything is opened or written.

    Raises:
        ReplayArgumentError: An argument that makes no sense. OutputError: An output that cannot be written.
    """
    spec = "" if source_spec is None else str(source_spec)
    if not spec.strip():
        raise ReplayArgumentError("SOURCE is empty: give a file, a folder, phantom:echo|cine, camera:N or igtl://host:port")
    if max_frames is not None and (isinstance(max_frames, bool) or int(max_frames) != max_frames or max_frames <= 0):
        raise ReplayArgumentError(f"--max-frames must be a positive whole number, got {max_frames}")
    if not (isinstance(deadline_ms, (int, float)) and math.isfinite(deadline_ms) and deadline_ms > 0):
        raise ReplayArgumentError(f"--deadline-ms must be a positive number of milliseconds, got {deadline_ms}")
    if timeout_s is not None and not timeout_s > 0:
        raise ReplayArgumentError(f"timeout must be positive, got {timeout_s}")
    if name is not None and (not name.strip() or "\n" in name or len(name) > 200):
        raise ReplayArgumentError("--name must be a non-empty single line of at most 200 characters")
    outputs = {"--report": check_output_path(report, REPORT_SUFFIXES, "--report")}
    for option, path, suffixes in (("--csv", csv_out, CSV_SUFFIXES), ("--masks", masks_out, MASK_SUFFIXES),
                                   ("--plot", plot_out, PLOT_SUFFIXES)):
        outputs[option] = None if path is None else check_output_path(path, suffixes, option)
    if not spec.startswith(_SCHEMES) and Path(spec).is_file():
        outputs = {"SOURCE": Path(spec), **outputs}  # an output must not overwrite the recording
    check_distinct(outputs)


def check_model_use(seg: ModelCard, modality: str | None, models_dir=None, *, force: bool = False) -> None:
    """The model given as the segmentation model must be one, and of the source's modality.

    Raises:
        ModelCardError: A QC (or other non-segmentation) model, or (unless ``force``) a model of
            another modality; the message names the models to use instead.
    """
    if seg.role != "seg":
        pairs = [c.id for c in list_models(seg.modality, models_dir) if c.role == "seg" and c.pairs_with == seg.id]
        others = pairs or [c.id for c in list_models(seg.modality, models_dir) if c.role == "seg"]
        use = f"use {' or '.join(others)}" if others else f"no {seg.modality} segmentation model is in this folder"
        kind = "a QC model" if seg.role == "qc" else f"{_a(seg.role)} model"
        extra = " (it runs this QC model itself)" if pairs else ""
        raise ModelCardError(seg.id, f"is {kind} (card role {seg.role!r}), not a segmentation model; {use}{extra}")
    if modality is None or seg.modality == modality:
        return
    message = f"is {_a(seg.modality)} model but the source is {modality}"
    if force:
        log.warning("%s %s (--force: running it anyway)", seg.id, message)
        return
    fits = [c.id for c in list_models(modality, models_dir) if c.role == "seg"]
    if fits:
        try:
            default = default_models(modality, models_dir)[0].id
        except ModelCardError:
            default = fits[0]
        others = [f for f in fits if f != default]
        use = f"leave --model out for the default {default}" + (f" or use one of {', '.join(others)}" if others else "")
    else:
        use = f"no {modality} segmentation model is in this folder"
    raise ModelCardError(seg.id, f"{message}; {use} (--force runs it anyway)")


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


# -- naming the source without its file name --------------------------------------------------------
def source_kind(spec: str, source=None) -> str:
    """``dicom``, ``video``, ``images``, ``nifti``, ``folder``, ``phantom``, ``camera``, ``igtl``, ``case``..."""
    if spec.startswith(_SCHEMES):
        return spec.split(":", 1)[0]
    by_class = _KIND_BY_CLASS.get(type(source).__name__) if source is not None else None
    if by_class:
        return by_class
    path = Path(spec)
    lower = path.name.lower()
    if path.is_dir():
        return "folder"
    if lower.endswith((".nii", ".nii.gz")):
        return "nifti"
    if lower.endswith((".dcm", ".dicom")):
        return "dicom"
    return "case" if lower.endswith(".npz") else "file"


def source_id(spec: str) -> str:
    """First 12 hex digits of the sha256 of the resolved path (or of the spec for a non-file source)."""
    key = spec if spec.startswith(_SCHEMES) else str(Path(spec).resolve())
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _scrubber(spec: str, label: str) -> Callable[[str], str]:
    """Replaces the source's path, folder and file name in a message by ``label`` (messages from
    sources name the file; a report must not)."""
    if spec.startswith(_SCHEMES):
        return lambda text: text
    path = Path(spec)
    resolved = path.resolve()
    swaps = {str(path): label, str(resolved): label, str(path.parent): "<folder>", str(resolved.parent): "<folder>",
             path.name: label}
    if len(path.stem) >= 3:
        swaps[path.stem.split(".")[0]] = label
    ordered = sorted(((k, v) for k, v in swaps.items() if k not in ("", ".", "/")), key=lambda kv: -len(kv[0]))

    def scrub(text: str) -> str:
        for old, new in ordered:
            text = text.replace(old, new)
        return text

    return scrub


# -- the replay -------------------------------------------------------------------------------------
def _open(spec: str, slice_index, force: bool):
    """``open_source`` with ``slice`` and, when asked and supported, ``force``."""
    options = {"slice": slice_index} if slice_index is not None else {}
    if force:
        if "force" in inspect.signature(open_source).parameters:
            options["force"] = True
        else:
            log.info("--force: this version's sources have no check to override")
    return open_source(spec, **options)


def replay(source_spec: str, *, report: Path, model_id: str | None = None, fast: bool = False,
           models_dir=None, masks_out: Path | None = None, csv_out: Path | None = None, slice_index=None,
           max_frames=None, deadline_ms: float = REALTIME.p95_ms, timeout_s: float | None = None,
           plot_out: Path | None = None, name: str | None = None, force: bool = False,
           stop: StopRequest | None = None, on_result: Callable[[FrameResult], None] | None = None,
           echo_mode: str | EchoMode | None = "auto", intra_op_threads: int | None = None,
           opener: Callable[[], object] | None = None, kind: str | None = None) -> dict:
    """Replay a source through the pipeline and write a JSON report.

    Args:
        source_spec: Anything ``open_source`` accepts.
        report: Where the JSON report goes (``.json``; its folder must exist).
        model_id: Segmentation model id (default: the modality's default model and its QC pair).
        fast: Every frame as fast as possible instead of paced at the source rate.
        models_dir: Folder of model cards (default: the shipped ``models/``).
        masks_out: Write the masks (``.nii``/``.nii.gz``, axes rows x cols x time) here.
        csv_out: Write one CSV row per processed frame here (``.csv``).
        slice_index: Cine: the short-axis slice to replay.
        max_frames: Stop after this many frames (live sources run until stopped otherwise).
        deadline_ms: Latency budget per frame for the deadline-miss count.
        timeout_s: Give up waiting for the source after this long (then report what was done).
        plot_out: Draw the latency CDF to this ``.png``.
        name: The source's name in the report (default: its kind and a hash of its path).
        force: Passed to ``open_source`` (override its modality check) and allow a model of
            another modality than the source's.
        stop: Ends the replay early when requested (the report then says ``interrupted``).
        on_result: Also called with each ``FrameResult`` once it is recorded (e.g. ``app.validate``).
        echo_mode: Echo sources: ``"auto"`` (default) detects contrast or B-mode echo once
            (``app.engine.sources.echo_mode_of``), ``"contrast"`` / ``"bmode"`` says which, or an
            ``EchoMode`` already decided (``app.validate``). The default model is one made for that
            mode (``default_models``); the report's ``echo_mode`` records the mode, the reason and
            any note (no model of that mode, or ``--model`` of the other mode).
        intra_op_threads: onnxruntime threads per operator (default: the runtime's choice).
        opener: Opens the source instead of ``open_source(source_spec)`` (``app.validate``'s dataset
            cases: a case already read, as ``case_source``); ``source_spec`` is then the case's file
            or folder, whose name the report's messages leave out.
        kind: The source's kind in the report (default: from the source and ``source_spec``).

    With ground truth, the true Dice scores the model's classes against the ground truth's by name
    (``app.metrics.match_classes``, the source's ``label_map``); the report lists the classes scored
    and those the ground truth lacks (``classes_not_scored``).

    Returns:
        The report dict (also written to ``report``).

    Raises:
        ReplayArgumentError, OutputError: Bad arguments or outputs (nothing was opened or written).
        DataError: The source cannot be opened. ModelCardError: No usable model, or the wrong kind.
    """
    check_request(source_spec, report=report, masks_out=masks_out, csv_out=csv_out, plot_out=plot_out,
                  max_frames=max_frames, deadline_ms=deadline_ms, timeout_s=timeout_s, name=name)
    if not isinstance(echo_mode, EchoMode) and echo_mode not in ECHO_CHOICES + (None,):
        raise ReplayArgumentError(f"--echo-mode must be one of {', '.join(ECHO_CHOICES)}, got {echo_mode!r}")
    spec = str(source_spec)
    seg = find_model(model_id, models_dir) if model_id is not None else None
    if seg is not None:
        check_model_use(seg, None, models_dir)
    source = opener() if opener is not None else _open(spec, slice_index, force)
    try:
        modality = source.info.modality
        echo = echo_mode if isinstance(echo_mode, EchoMode) else echo_mode_of(source, echo_mode)
        if seg is None:
            seg, qc = default_models(modality or "echo", models_dir, echo_mode=echo.mode if echo else None)
        else:
            check_model_use(seg, modality, models_dir, force=force)
            qc = qc_for(seg, models_dir)
        kind = kind or source_kind(spec, source)
        label = name.strip() if name else f"{kind}-{source_id(spec)}"
        scrub = _scrubber(spec, label)
        echo_report = None
        if echo is not None and (modality or "echo") == "echo":
            note = echo_mode_note(seg, echo.mode, models_dir)
            if note and model_id is not None:  # the default's fallback was warned about in default_models
                log.warning("%s", note)
            # the reason is the detector's own words and contrast attribute values, never a path: not scrubbed
            # (scrubbing swaps a file's stem anywhere, e.g. "contrast" in "contrast.dcm")
            echo_report = {"mode": echo.mode, "reason": echo.reason, "requested": _requested(echo_mode),
                           "model_mode": seg.echo_mode, "note": note}
        run = _Run(source, seg, qc, label=label, kind=kind, scrub=scrub, fast=fast,
                   deadline_ms=deadline_ms, max_frames=max_frames, stop=stop or StopRequest(),
                   intra_op_threads=intra_op_threads)
        run.echo = echo_report
        run.extra_on_result = on_result
        return run.execute(Path(report), csv_out=csv_out, masks_out=masks_out, plot_out=plot_out, timeout_s=timeout_s)
    finally:
        source.close()


def _requested(echo_mode) -> str:
    """What the caller asked for: ``auto``, ``contrast`` or ``bmode`` (an ``EchoMode`` decided upstream: ``auto``)."""
    return echo_mode if echo_mode in ECHO_CHOICES else "auto"


class _Run:
    """One replay: the pipeline, the player, the writers and the periodic report."""

    def __init__(self, source, seg: ModelCard, qc: ModelCard | None, *, label: str, kind: str,
                 scrub: Callable[[str], str], fast: bool, deadline_ms: float, max_frames, stop: StopRequest,
                 intra_op_threads: int | None = None):
        self.source, self.seg, self.qc = source, seg, qc
        self.intra_op_threads = intra_op_threads
        self.label, self.kind, self.scrub = label, kind, scrub
        self.fast, self.deadline_ms, self.max_frames, self.stop = fast, deadline_ms, max_frames, stop
        self.records: list[FrameRecord] = []
        self.lock = threading.Lock()
        self.csv: CsvRows | None = None
        self.masks: MaskStream | None = None
        self.output_error: str | None = None
        self.source_error: list[str] = []
        self.delivered = 0
        self.pipeline: Pipeline | None = None
        self.player: Player | None = None
        self.t_start = time.perf_counter_ns()
        self.extra_on_result: Callable[[FrameResult], None] | None = None
        self.echo: dict | None = None  # the report's echo_mode entry (echo sources)

    # -- callbacks (pipeline delivery thread, player thread) -----------------------------------------
    def on_result(self, result: FrameResult) -> None:
        rec = FrameRecord(result.frame.index, result.timestamps["arrival"], result.timestamps["overlay"],
                          result.stage_ms(), result.latency_ms if result.error is None else None,
                          result.predicted_dice, result.true_dice, result.error)
        try:  # on disk first: a report never counts a frame whose row and mask are not written
            if self.csv is not None:
                self.csv.write(rec)
            if self.masks is not None and result.mask is not None:
                self.masks.add(result.frame.index, result.mask)
        except OSError as exc:
            self._write_failed(exc)
        with self.lock:
            self.records.append(rec)
        if self.extra_on_result is not None:
            self.extra_on_result(result)

    def _write_failed(self, exc: OSError) -> None:
        if self.output_error is None:
            self.output_error = f"{Path(exc.filename).name if exc.filename else 'output'}: {exc.strerror or exc}"
            log.error("writing failed: %s; stopping the replay", self.output_error)
        self.stop.request("output error")

    def sink(self, frame) -> None:
        if self.max_frames is not None and self.delivered >= self.max_frames:
            self.player.stop()
            return
        if self.fast:
            self.pipeline.wait_slot()
        self.pipeline.submit(frame)
        self.delivered += 1
        if self.max_frames is not None and self.delivered >= self.max_frames:
            self.player.stop()

    # -- the run ------------------------------------------------------------------------------------
    def _open_writers(self, csv_out, masks_out) -> None:
        info = self.source.info
        try:
            if csv_out is not None:
                self.csv = CsvRows(Path(csv_out), scrub=self.scrub)
            if masks_out is not None:
                self.masks = MaskStream(Path(masks_out), info.spacing_mm, info.frame_rate)
        except OSError as exc:
            for writer in (self.csv, self.masks):
                if writer is not None:
                    writer.close()
            raise OutputError(exc.filename or csv_out or masks_out, exc.strerror or str(exc)) from None

    def _write_report(self, path: Path, out: dict) -> None:
        try:
            write_json_atomic(path, out)
        except OSError as exc:
            self._write_failed(exc)

    def execute(self, report: Path, *, csv_out, masks_out, plot_out, timeout_s) -> dict:
        info = self.source.info
        self.pipeline = Pipeline(self.seg, self.qc, on_result=self.on_result, deadline_ms=self.deadline_ms,
                                 intra_op_threads=self.intra_op_threads,
                                 ground_truth_labels=info.label_map if info.has_ground_truth else None)
        try:
            self._open_writers(csv_out, masks_out)
        except OutputError:
            self.pipeline.close()
            raise
        self.player = Player(self.source, self.sink, paced=not self.fast,
                             on_error=lambda exc: self.source_error.append(self.scrub(str(exc))))
        self.t_start = time.perf_counter_ns()
        self._write_report(report, self.report(complete=False))
        self.player.start()
        interrupted = self._wait(report, timeout_s)
        self.player.stop()
        try:
            self.pipeline.drain(timeout=60.0)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, still write what there is
            interrupted = interrupted or "SIGINT"
        self.pipeline.close()
        if self.csv is not None:
            self.csv.close()
        out = self.report(complete=True, interrupted=interrupted)
        self._finish_outputs(out, masks_out, plot_out)
        self._write_report(report, out)
        if self.output_error:
            out["output_error"] = self.output_error
        if csv_out is not None:
            out["csv"] = str(csv_out)
        return out

    def _wait(self, report: Path, timeout_s: float | None) -> str | None:
        """Until the source ends, a stop is requested, or the timeout; the report every second."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        next_report = time.monotonic() + REPORT_EVERY_S
        try:
            while not self.player.join(0.1):
                if self.stop.requested:
                    return None if self.stop.reason == "output error" else self.stop.reason
                if deadline is not None and time.monotonic() > deadline:
                    log.warning("replay timed out after %.1f s", timeout_s)
                    return None
                if time.monotonic() >= next_report:
                    self._write_report(report, self.report(complete=False))
                    next_report = time.monotonic() + REPORT_EVERY_S
        except KeyboardInterrupt:
            return self.stop.reason or "SIGINT"
        return self.stop.reason if self.stop.requested and self.stop.reason != "output error" else None

    def _finish_outputs(self, out: dict, masks_out, plot_out) -> None:
        if self.masks is not None:
            try:
                self.masks.finish(self.delivered)
            except OSError as exc:
                self._write_failed(exc)
        if plot_out is not None:
            from app.engine.latency_plot import plot_latency_cdf

            try:
                plot_latency_cdf(self.field_latencies(), plot_out, deadline_ms=self.deadline_ms,
                                 title=f"End-to-end latency, {self.seg.id}, {out['mode']}")
            except OSError as exc:
                self._write_failed(exc)

    # -- the report ---------------------------------------------------------------------------------
    def snapshot(self) -> list[FrameRecord]:
        with self.lock:
            return sorted(self.records, key=lambda r: r.index)

    def field_latencies(self) -> np.ndarray:
        """Latencies of good frames in order, warm-up and tail frames left out (what the report uses)."""
        ok = [r.latency_ms for r in self.snapshot() if r.error is None and r.latency_ms is not None]
        return trim_warmup(np.asarray(ok, dtype=np.float64))[0]

    def report(self, *, complete: bool, interrupted: str | None = None) -> dict:
        records = self.snapshot()
        out = build_report(self.source, self.seg, self.qc, records, self.pipeline.stats(), fast=self.fast,
                           wall_s=(time.perf_counter_ns() - self.t_start) / 1e9, deadline_ms=self.deadline_ms,
                           name=self.label, kind=self.kind, scrub=self.scrub)
        out["echo_mode"] = self.echo
        out["complete"] = complete
        if not complete:
            out["delivered"] = self.delivered
        if self.source_error:
            out["source_error"] = self.source_error[0]
        if interrupted:
            out["interrupted"] = True
            out["interrupted_by"] = interrupted
        if self.output_error:
            out["output_error"] = self.scrub(self.output_error)
        return out


def build_report(source, seg, qc, records: list[FrameRecord], stats, *, fast: bool, wall_s: float,
                 deadline_ms: float, name: str, kind: str, scrub: Callable[[str], str] = lambda s: s) -> dict:
    """The report dict of the frames so far (``records`` in frame order)."""
    ok = [r for r in records if r.error is None]
    latency = np.asarray([r.latency_ms for r in ok if r.latency_ms is not None], dtype=np.float64)
    field, head, tail = field_latency(latency)
    lat = {k: _finite_or_none(v) for k, v in field.items()}
    fps = 0.0
    if len(records) >= 2:
        span = (max(r.done_ns for r in records) - min(r.arrival_ns for r in records)) / 1e9
        fps = (len(records) - 1) / span if span > 0 else 0.0
    stage_names = ("queue", "preprocess", "segment", "qc", "overlay")
    stages = {s: _finite_or_none(float(np.median([r.stages[s] for r in ok if s in r.stages])))
              if any(s in r.stages for r in ok) else None for s in stage_names}
    overhead = np.asarray([r.latency_ms - r.stages.get("segment", 0.0) - r.stages.get("qc", 0.0) - r.stages.get("queue", 0.0)
                           for r in ok if r.latency_ms is not None], dtype=np.float64)
    info = source.info
    out = {
        "source": {"name": name, "kind": kind, "modality": info.modality, "frame_rate": info.frame_rate,
                   "n_frames": info.n_frames, "n_slices": info.n_slices,
                   "slice": getattr(source, "slice_index", None) if info.n_slices > 1 else None,
                   "has_ground_truth": info.has_ground_truth},
        "models": {"seg": seg.id, "qc": qc.id if qc is not None else None},
        "mode": "fast" if fast else "paced",
        "frames": int(stats.frames_in),
        "processed": len(records),
        "dropped": int(stats.dropped),
        "errors": sum(r.error is not None for r in records),
        "latency_ms": lat,
        "excluded_warmup_frames": head,
        "excluded_tail_frames": tail,
        "fps": round(float(fps), 3),
        "deadline_ms": deadline_ms,
        "deadline_misses": int(np.count_nonzero(latency > deadline_ms)),
        "meets_realtime": REALTIME.meets(lat["p95"], fps),
        "stages_ms_p50": stages,
        "overhead_ms": {"p50": _finite_or_none(float(np.median(overhead))) if overhead.size else None,
                        "p95": _finite_or_none(float(np.percentile(overhead, 95))) if overhead.size else None},
        "wall_s": round(wall_s, 3),
        "machine": machine_description(),
    }
    if info.has_ground_truth:
        match = match_classes(seg.classes, info.label_map)
        out["classes_scored"] = {seg.classes[c]: {"label": c, "ground_truth_label": g}
                                 for c, g in match.ground_truth_label.items()}
        if match.not_scored:
            out["classes_not_scored"] = {"classes": list(match.not_scored.values()), "reason": NOT_SCORED_REASON}
        true = [r.true_dice for r in ok if r.true_dice is not None]
        out["dice_mean"] = _finite_or_none(float(np.mean(true))) if true else None
        out["n_labelled"] = len(true)
        pairs = [(r.predicted_dice, r.true_dice) for r in ok if r.true_dice is not None and r.predicted_dice is not None]
        if pairs:
            cal = qc_calibration([p for p, _ in pairs], [t for _, t in pairs])
            out["qc_mae"] = _finite_or_none(cal["qc_mae"])
            out["qc_pearson"] = _finite_or_none(cal["qc_pearson"])
        else:
            out["qc_mae"] = out["qc_pearson"] = None
    first_error = next((r.error for r in records if r.error), None)
    if first_error:
        out["first_error"] = scrub(first_error)
    return out


# -- whole-file writers (kept for callers that hold all records) ------------------------------------
def write_csv(path: Path, records: list[FrameRecord]) -> Path:
    """One row per processed frame; times in ms, arrival relative to the first frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = CsvRows(path)
    t0 = min((r.arrival_ns for r in records), default=0)
    try:
        for r in records:
            writer.write(r, t0)
    finally:
        writer.close()
    return path


def write_masks(path: Path, masks: dict[int, np.ndarray], n_frames: int, info) -> Path | None:
    """Masks as a NIfTI volume ``(rows, cols, T)`` uint8 for 3D Slicer / ITK-SNAP.

    A frame the pipeline dropped gets the previous processed frame's mask (what the viewer showed);
    frames before the first processed one are empty.
    """
    if not masks:
        log.warning("no masks to write to %s (no frame was segmented)", path)
        return None
    return write_masks_nifti(Path(path), masks_volume(masks, n_frames), info.spacing_mm, info.frame_rate)


def _rate(frame_rate) -> str:
    """``"19.9 fps"`` for a recording, ``"live"`` for a source without a frame rate."""
    return "live" if not frame_rate else f"{float(frame_rate):.1f} fps"


def _echo_lines(echo: dict | None) -> list[str]:
    """The report's echo mode for the terminal: the mode and why, and any note."""
    if not echo:
        return []
    lines = [f"echo     {echo['reason']}"]
    if echo.get("note"):
        lines.append(f"note     {echo['note']}")
    return lines


def summary_lines(report: dict) -> list[str]:
    """A readable summary of a report for the terminal."""
    lat = report["latency_ms"]

    def ms(v):
        return "n/a" if v is None else f"{v:.1f}"

    trimmed = report.get("excluded_warmup_frames", 0) + report.get("excluded_tail_frames", 0)
    lines = [
        f"source   {report['source']['name']} ({report['source']['modality']}, "
        f"{_rate(report['source']['frame_rate'])}), {report['mode']}",
        f"models   seg {report['models']['seg']}, qc {report['models']['qc'] or '-'}",
        *_echo_lines(report.get("echo_mode")),
        f"frames   {report['frames']} in, {report['processed']} processed, {report['dropped']} dropped, "
        f"{report['errors']} errors",
        f"latency  p50 {ms(lat['p50'])}  p90 {ms(lat.get('p90'))}  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}  "
        f"p99.9 {ms(lat.get('p99.9'))}  max {ms(lat['max'])} ms"
        + (f" (first {report['excluded_warmup_frames']} and last {report['excluded_tail_frames']} frames left out)"
           if trimmed else ""),
        f"deadline {report['deadline_misses']} frames over {report['deadline_ms']:g} ms",
        f"rate     {report['fps']:.1f} fps; overhead p50 {ms(report['overhead_ms']['p50'])} ms",
        f"realtime {'yes' if report['meets_realtime'] else 'NO'} (needs {REALTIME.describe()})",
    ]
    if "dice_mean" in report:
        def num(v):
            return "n/a" if v is None else f"{v:.3f}"
        lines.append(f"truth    Dice {num(report['dice_mean'])} over {report['n_labelled']} frames; "
                     f"QC MAE {num(report['qc_mae'])}, Pearson {num(report['qc_pearson'])}")
        if report.get("classes_not_scored"):
            lines.append(f"         not scored: {', '.join(report['classes_not_scored']['classes'])} "
                         "(the ground truth has no class of that name)")
    if report.get("interrupted"):
        lines.append(f"stopped  by {report.get('interrupted_by', 'SIGINT')}; the report covers the frames before it")
    if report.get("source_error"):
        lines.append(f"source error: {report['source_error']}")
    if report.get("output_error"):
        lines.append(f"output error: {report['output_error']}")
    if report.get("first_error"):
        lines.append(f"first frame error: {report['first_error']}")
    return lines

