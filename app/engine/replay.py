"""Headless replay for validation: a source through the pipeline, then a JSON report.

Paced at the source's own frame rate by default (the newest frame wins, as at the scanner), or
``fast``: every frame, as fast as the pipeline takes them (throughput). With ground truth the
report adds the mean Dice and the QC calibration (MAE and Pearson of predicted vs true Dice).
Optional outputs: the masks as NIfTI (rows, cols, time) and a per-frame CSV.
"""

from __future__ import annotations

import csv
import json
import logging
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.engine.models import default_models, find_model, qc_for
from app.engine.pipeline import Pipeline
from app.engine.player import Player
from app.engine.sources import open_source
from app.engine.stats import percentiles
from app.engine.types import FrameResult
from app.metrics import qc_calibration

log = logging.getLogger(__name__)

REALTIME_P95_MS = 50.0
REALTIME_FPS = 22.0
CSV_COLUMNS = ("index", "arrival_ms", "preprocess_ms", "segment_ms", "qc_ms", "overlay_ms", "latency_ms",
               "predicted_dice", "true_dice", "error")


@dataclass
class _Record:
    """What the report keeps of one processed frame (small: no images)."""

    index: int
    arrival_ns: int
    done_ns: int
    stages: dict[str, float]
    latency_ms: float | None
    predicted_dice: float | None
    true_dice: float | None
    error: str | None


def machine_description() -> str:
    """E.g. ``"2-core x86_64 CPU, onnxruntime 1.x CPU EP"`` (no host names)."""
    import os

    import onnxruntime as ort

    return f"{os.cpu_count()}-core {platform.machine()} CPU, onnxruntime {ort.__version__} CPU EP"


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def replay(source_spec: str, *, report: Path, model_id: str | None = None, fast: bool = False,
           models_dir=None, masks_out: Path | None = None, csv_out: Path | None = None, slice_index=None,
           max_frames=None, deadline_ms: float = 50.0, timeout_s: float | None = None) -> dict:
    """Replay a source through the pipeline and write a JSON report.

    Args:
        source_spec: Anything ``open_source`` accepts.
        report: Where the JSON report goes.
        model_id: Segmentation model id (default: the modality's default model and its QC pair).
        fast: Every frame as fast as possible instead of paced at the source rate.
        models_dir: Folder of model cards (default: the shipped ``models/``).
        masks_out: Write the masks (``.nii.gz``, axes rows x cols x time) here.
        csv_out: Write one CSV row per processed frame here.
        slice_index: Cine: the short-axis slice to replay.
        max_frames: Stop after this many frames (live sources run until stopped otherwise).
        deadline_ms: Latency budget per frame for the deadline-miss count.
        timeout_s: Give up waiting for the source after this long (then report what was done).

    Returns:
        The report dict (also written to ``report``).

    Raises:
        DataError: The source cannot be opened. ModelCardError: No usable model.
    """
    source = open_source(source_spec, **({"slice": slice_index} if slice_index is not None else {}))
    try:
        if model_id is not None:
            seg = find_model(model_id, models_dir)
            qc = qc_for(seg, models_dir)
        else:
            seg, qc = default_models(source.info.modality or "echo", models_dir)
        if source.info.modality is not None and seg.modality != source.info.modality:
            log.warning("model %s is for %s but the source is %s", seg.id, seg.modality, source.info.modality)
        return _run(source, seg, qc, report=Path(report), fast=fast, masks_out=masks_out, csv_out=csv_out,
                    max_frames=max_frames, deadline_ms=deadline_ms, timeout_s=timeout_s)
    finally:
        source.close()


def _run(source, seg, qc, *, report: Path, fast: bool, masks_out, csv_out, max_frames, deadline_ms, timeout_s) -> dict:
    records: list[_Record] = []
    masks: dict[int, np.ndarray] = {}
    lock = threading.Lock()
    keep_masks = masks_out is not None

    def on_result(result: FrameResult) -> None:
        rec = _Record(result.frame.index, result.timestamps["arrival"], result.timestamps["overlay"],
                      result.stage_ms(), result.latency_ms if result.error is None else None,
                      result.predicted_dice, result.true_dice, result.error)
        with lock:
            records.append(rec)
            if keep_masks and result.mask is not None:
                masks[result.frame.index] = result.mask

    pipeline = Pipeline(seg, qc, on_result=on_result, deadline_ms=deadline_ms)
    source_error: list[str] = []
    delivered = [0]
    player: Player | None = None

    def sink(frame) -> None:
        if max_frames is not None and delivered[0] >= max_frames:
            player.stop()
            return
        if fast:
            pipeline.wait_slot()
        pipeline.submit(frame)
        delivered[0] += 1
        if max_frames is not None and delivered[0] >= max_frames:
            player.stop()

    player = Player(source, sink, paced=not fast, on_error=lambda exc: source_error.append(str(exc)))
    t_start = time.perf_counter_ns()
    player.start()
    interrupted = False
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not player.join(0.2):
            if deadline is not None and time.monotonic() > deadline:
                log.warning("replay timed out after %.1f s", timeout_s)
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        player.stop()
        pipeline.drain(timeout=60.0)
        stats = pipeline.stats()
        pipeline.close()
    wall_s = (time.perf_counter_ns() - t_start) / 1e9
    records.sort(key=lambda r: r.index)
    out = _report(source, seg, qc, records, stats, fast=fast, wall_s=wall_s, deadline_ms=deadline_ms)
    if source_error:
        out["source_error"] = source_error[0]
    if interrupted:
        out["interrupted"] = True
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")
    if csv_out is not None:
        write_csv(Path(csv_out), records)
        out["csv"] = str(csv_out)
    if masks_out is not None:
        write_masks(Path(masks_out), masks, delivered[0], source.info)
    return out


def _report(source, seg, qc, records: list[_Record], stats, *, fast: bool, wall_s: float, deadline_ms: float) -> dict:
    ok = [r for r in records if r.error is None]
    latency = np.asarray([r.latency_ms for r in ok if r.latency_ms is not None], dtype=np.float64)
    lat = {k: _finite_or_none(v) for k, v in percentiles(latency).items()}
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
        "source": {"name": info.name, "modality": info.modality, "frame_rate": info.frame_rate,
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
        "fps": round(float(fps), 3),
        "deadline_ms": deadline_ms,
        "deadline_misses": int(sum(1 for v in latency if v > deadline_ms)),
        "meets_realtime": bool(lat["p95"] is not None and lat["p95"] <= REALTIME_P95_MS and fps >= REALTIME_FPS),
        "stages_ms_p50": stages,
        "overhead_ms": {"p50": _finite_or_none(float(np.median(overhead))) if overhead.size else None,
                        "p95": _finite_or_none(float(np.percentile(overhead, 95))) if overhead.size else None},
        "wall_s": round(wall_s, 3),
        "machine": machine_description(),
    }
    if info.has_ground_truth:
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
        out["first_error"] = first_error
    return out


def write_csv(path: Path, records: list[_Record]) -> Path:
    """One row per processed frame; times in ms, arrival relative to the first frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = min((r.arrival_ns for r in records), default=0)

    def fmt(v):
        return "" if v is None else f"{v:.4f}" if isinstance(v, float) else v

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in records:
            writer.writerow([r.index, fmt((r.arrival_ns - t0) / 1e6), *(fmt(r.stages.get(s)) for s in
                             ("preprocess", "segment", "qc", "overlay")), fmt(r.latency_ms),
                             fmt(r.predicted_dice), fmt(r.true_dice), r.error or ""])
    return path


def write_masks(path: Path, masks: dict[int, np.ndarray], n_frames: int, info) -> Path | None:
    """Masks as a NIfTI volume ``(rows, cols, T)`` uint8 for 3D Slicer / ITK-SNAP.

    A frame the pipeline dropped gets the previous processed frame's mask (what the viewer showed);
    frames before the first processed one are empty.
    """
    from app.data.loaders.nifti import write_nifti

    if not masks:
        log.warning("no masks to write to %s (no frame was segmented)", path)
        return None
    first = next(iter(masks.values()))
    n = max(n_frames, max(masks) + 1)
    volume = np.zeros((*first.shape, n), dtype=np.uint8)
    last = None
    for t in range(n):
        last = masks.get(t, last)
        if last is not None and last.shape == first.shape:
            volume[..., t] = last
    spacing = info.spacing_mm or (1.0, 1.0)
    dt = 1.0 / info.frame_rate if info.frame_rate else 1.0
    return write_nifti(Path(path), volume, (float(spacing[0]), float(spacing[1]), dt), time_unit="sec")


def summary_lines(report: dict) -> list[str]:
    """A readable summary of a report for the terminal."""
    lat = report["latency_ms"]

    def ms(v):
        return "n/a" if v is None else f"{v:.1f}"

    lines = [
        f"source   {report['source']['name']} ({report['source']['modality']}, "
        f"{report['source']['frame_rate'] or 'live'} fps), {report['mode']}",
        f"models   seg {report['models']['seg']}, qc {report['models']['qc'] or '-'}",
        f"frames   {report['frames']} in, {report['processed']} processed, {report['dropped']} dropped, "
        f"{report['errors']} errors",
        f"latency  p50 {ms(lat['p50'])}  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}  max {ms(lat['max'])} ms; "
        f"{report['deadline_misses']} over {report['deadline_ms']:.0f} ms",
        f"rate     {report['fps']:.1f} fps; overhead p50 {ms(report['overhead_ms']['p50'])} ms",
        f"realtime {'yes' if report['meets_realtime'] else 'NO'} (needs p95 <= {REALTIME_P95_MS:.0f} ms "
        f"and >= {REALTIME_FPS:.0f} fps)",
    ]
    if "dice_mean" in report:
        def num(v):
            return "n/a" if v is None else f"{v:.3f}"
        lines.append(f"truth    Dice {num(report['dice_mean'])} over {report['n_labelled']} frames; "
                     f"QC MAE {num(report['qc_mae'])}, Pearson {num(report['qc_pearson'])}")
    if report.get("source_error"):
        lines.append(f"source error: {report['source_error']}")
    if report.get("first_error"):
        lines.append(f"first frame error: {report['first_error']}")
    return lines
