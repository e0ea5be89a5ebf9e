"""Pipeline benchmark: the engine against a naive sequential loop, and every shipped model side by side.

Everything runs in ONE process on the same recorded sources, as "arms" (source x model x runner x
mode) interleaved in seeded shuffled rounds, so background load on a shared machine hits all arms
alike. Each seg model is loaded once (``app.engine.pipeline.Pipeline``: card verified, session
warmed up) and both runners use its onnxruntime sessions, so only the scheduling differs:

* ``engine``: the product's path, ``Player`` (decode + pacing on its own thread) -> ``Pipeline``
  (inference worker: preprocess, seg, QC, mask, overlay; delivery worker: Dice, stats), newest
  frame wins. ``paced`` plays at the source's frame rate; ``fast`` hands over every frame as soon as
  the pipeline takes it (``replay --fast``).
* ``naive``: one thread, ``for frame in source: decode -> preprocess -> seg -> QC -> mask -> overlay
  -> Dice``, with the engine's own stage functions and the same sessions. ``paced``: frame k is due
  at ``t0 + k / rate`` on the source clock; a loop that falls behind works through the backlog (its
  latency counts from the due time). ``fast``: as fast as it goes (latency from the decoded frame).

Part (a) compares the runners with each modality's default model; part (b) runs every seg model of
the modality (discovered from ``--models-dir``, never hard-coded) through the engine and divides its
figures by the modality's handcrafted reference (the float ``baseline-*`` seg model).

Per arm: frames, drops, latency p50/p95/p99/max (arrival -> overlay ready), FPS (processed frames
per second of completion), stage medians, Dice and QC calibration where the source has ground truth.
``meets_budget``: paced p95 <= 50 ms and fast (throughput) FPS >= 22.

Usage::

    python bench/pipeline_bench.py [--rounds 2] [--seconds 5] [--models-dir DIR] [--seed 0]
        [--echo-source SPEC ...] [--cine-source SPEC ...] [--parts a b] [--max-frames N] [--out FILE.json]

Prints Markdown tables; writes the JSON (machine, load averages, every arm, the ratios) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.cards import ModelCardError
from app.data.case import DataError
from app.engine.benchmark import load_average
from app.engine.models import default_models, list_models, qc_for
from app.engine.overlay import OverlayStyle, compose
from app.engine.pipeline import Pipeline
from app.engine.player import Player
from app.engine.replay import REALTIME_FPS, REALTIME_P95_MS, machine_description
from app.engine.runtime import default_threads
from app.engine.sources import open_source
from app.engine.stages import QcStage, SegStage, mask_at
from app.engine.stats import percentiles
from app.engine.types import FrameResult
from app.metrics import mean_dice, qc_calibration

log = logging.getLogger("pipeline_bench")

RUNNERS = ("engine", "naive")
MODES = ("paced", "fast")
STAGES = ("queue", "preprocess", "segment", "qc", "overlay")
# The engine's FrameResult has no "started" stamp: its "preprocess" stage (preprocessed - arrival)
# includes the time a frame waited in the pending slot. The naive loop records that wait apart.
ENGINE_STAGE_NOTE = ("engine stage 'preprocess' = preprocessed - arrival, so it includes the wait in the pending "
                     "slot (large in fast mode); naive arms report that wait apart as 'wait'")
DEMO_DIR = Path(__file__).resolve().parents[1] / "app" / "assets" / "demo"


def default_sources() -> dict[str, list[str]]:
    """Echo: the shipped demo and pydicom-data's real A4C echo; cine: the shipped demo (else the phantom)."""
    from pydicom.data import get_testdata_file

    echo = [str(p) for p in [DEMO_DIR / "echo_contrast_a4c.dcm"] if p.is_file()]
    echo.append(get_testdata_file("color3d_jpeg_baseline.dcm"))
    cine_demo = DEMO_DIR / "cine_sax" / "patient001"
    return {"echo": echo, "cine": [str(cine_demo) if cine_demo.is_dir() else "phantom:cine"]}


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _num(value) -> float | None:
    """A finite float or None (JSON has no NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is 0."""
    return None if a is None or b is None or b == 0 else float(a) / float(b)


@dataclass
class Record:
    """One processed frame (small: no images). Times are ``perf_counter_ns``."""

    index: int
    arrival_ns: int
    done_ns: int
    stages_ms: dict[str, float]
    predicted_dice: float | None
    true_dice: float | None
    error: str | None

    @property
    def latency_ms(self) -> float:
        return (self.done_ns - self.arrival_ns) / 1e6


@dataclass
class ArmRun:
    """What one run of one arm produced."""

    records: list[Record] = field(default_factory=list)
    frames_in: int = 0
    dropped: int = 0
    backlog: int = 0
    wall_s: float = 0.0
    load_avg: list[float] = field(default_factory=list)


@dataclass
class Source:
    """A source spec, its modality and the cine slice to play."""

    key: str
    spec: str
    modality: str
    slice_index: int | None

    def open(self):
        source = open_source(self.spec)
        if self.slice_index is not None:
            source.set_slice(self.slice_index)
        return source


def probe_source(spec: str) -> Source:
    """Open once to learn the modality; cine sources play their middle slice."""
    with open_source(spec) as source:
        info = source.info
        modality = info.modality or "echo"
        z = info.n_slices // 2 if info.n_slices > 1 else None
    key = info.name if z is None else f"{info.name} slice {z}"
    return Source(key=key, spec=spec, modality=modality, slice_index=z)


class LoadedPair:
    """A seg model (+ its QC pair) loaded once; the engine's ``Pipeline`` and the naive loop share its sessions."""

    def __init__(self, seg, qc, intra_op_threads: int | None = None):
        self.seg, self.qc = seg, qc
        self.results: list[Record] = []
        self._lock = threading.Lock()
        t0 = time.perf_counter()
        self.pipeline = Pipeline(seg, qc, on_result=self._on_result, intra_op_threads=intra_op_threads)
        self.load_s = time.perf_counter() - t0
        # The same warmed-up sessions (the pipeline exposes no public accessor for them).
        self.seg_model = self.pipeline._seg.model
        self.qc_model = self.pipeline._qc.model if self.pipeline._qc is not None else None
        self.foreground = tuple(c for c in seg.classes if c != 0)

    def _on_result(self, result: FrameResult) -> None:
        rec = Record(result.frame.index, result.timestamps["arrival"], result.timestamps["overlay"],
                     result.stage_ms(), result.predicted_dice, result.true_dice, result.error)
        with self._lock:
            self.results.append(rec)

    def take_results(self) -> list[Record]:
        with self._lock:
            out, self.results = self.results, []
        return out

    def close(self) -> None:
        self.pipeline.close()


def run_engine(pair: LoadedPair, source: Source, mode: str, seconds: float, max_frames: int | None) -> ArmRun:
    """The product's path: Player -> Pipeline, paced or fast, for ``seconds`` or ``max_frames``."""
    src = source.open()
    pair.take_results()
    pair.pipeline.reset_stats()
    fast = mode == "fast"
    delivered = [0]
    player: Player | None = None

    def sink(frame) -> None:
        if max_frames is not None and delivered[0] >= max_frames:
            player.stop()
            return
        if fast:
            pair.pipeline.wait_slot()
        pair.pipeline.submit(frame)
        delivered[0] += 1

    player = Player(src, sink, paced=not fast, loop=src.seekable)
    run = ArmRun(load_avg=load_average())
    t0 = time.perf_counter()
    player.start()
    try:
        while not player.join(0.02) and time.perf_counter() - t0 < seconds:
            pass
    finally:
        player.stop()
        pair.pipeline.drain(timeout=120.0)
        src.close()
    run.wall_s = time.perf_counter() - t0
    stats = pair.pipeline.stats()
    run.records = sorted(pair.take_results(), key=lambda r: r.done_ns)
    run.frames_in, run.dropped = int(stats.frames_in), int(stats.dropped)
    return run


def _looping(src):
    """Frames of a recording, restarting at frame 0 at the end (live sources just run)."""
    while True:
        got = False
        for frame in src:
            got = True
            yield frame
        if not got or not src.seekable:
            return
        src.seek(0)


def run_naive(pair: LoadedPair, source: Source, mode: str, seconds: float, max_frames: int | None) -> ArmRun:
    """One thread: decode -> preprocess -> seg -> QC -> mask -> overlay -> Dice, every frame in order."""
    src = source.open()
    seg_stage = SegStage(pair.seg_model)
    qc_stage = QcStage(pair.qc_model) if pair.qc_model is not None else None
    style = OverlayStyle()
    rate = src.info.frame_rate if mode == "paced" else None
    run = ArmRun(load_avg=load_average())
    t0_ns = time.perf_counter_ns()
    frames = _looping(src)
    k = 0
    try:
        while (time.perf_counter_ns() - t0_ns) / 1e9 < seconds and (max_frames is None or k < max_frames):
            frame = next(frames, None)
            if frame is None:
                break
            if rate:
                due = t0_ns + int(k * 1e9 / rate)
                wait = (due - time.perf_counter_ns()) / 1e9
                if wait > 0:
                    time.sleep(wait)
                arrival = due  # the scanner produced it then; a late loop makes it wait
            else:
                arrival = frame.t_arrival
            k += 1
            run.records.append(_naive_frame(frame, arrival, seg_stage, qc_stage, style, pair.foreground))
    finally:
        src.close()
    end_ns = time.perf_counter_ns()
    run.wall_s = (end_ns - t0_ns) / 1e9
    run.frames_in = k
    if rate:  # frames the source produced during the run that the loop never reached
        run.backlog = max(0, int((end_ns - t0_ns) / 1e9 * rate) + 1 - k) if max_frames is None else 0
    return run


def _naive_frame(frame, arrival: int, seg_stage: SegStage, qc_stage: QcStage | None, style: OverlayStyle,
                 foreground: tuple[int, ...]) -> Record:
    stamps = {"arrival": arrival, "started": time.perf_counter_ns()}
    predicted = true = error = None
    try:
        x = seg_stage.prepare(frame, seg_stage.observe(frame))
        stamps["preprocessed"] = time.perf_counter_ns()
        seg = seg_stage.segment(x)
        stamps["segmented"] = time.perf_counter_ns()
        if qc_stage is not None:
            predicted = qc_stage.run(seg)
        stamps["qc"] = time.perf_counter_ns()
        height, width = frame.image.shape[:2]
        mask = mask_at(seg.probs, height, width)
        compose(frame.image, mask, style)
        stamps["overlay"] = time.perf_counter_ns()
        gt = frame.ground_truth
        if gt is not None:
            if gt.shape != mask.shape:
                mask = cv2.resize(mask, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
            true = _num(mean_dice(mask, gt, foreground))
    except Exception as exc:  # same policy as the pipeline: a bad frame is counted, the loop goes on
        error = f"{type(exc).__name__}: {exc}"
        stamps["overlay"] = time.perf_counter_ns()
    names = [("wait", "arrival", "started"), ("preprocess", "started", "preprocessed"),
             ("segment", "preprocessed", "segmented"), ("qc", "segmented", "qc"), ("overlay", "qc", "overlay")]
    stages = {n: (stamps[b] - stamps[a]) / 1e6 for n, a, b in names if a in stamps and b in stamps}
    return Record(frame.index, arrival, stamps["overlay"], stages, predicted, true, error)


def fps_of(records: list[Record]) -> tuple[int, float]:
    """(completed intervals, seconds) between the first and last completion; FPS = intervals / seconds."""
    if len(records) < 2:
        return 0, 0.0
    done = sorted(r.done_ns for r in records)
    return len(done) - 1, (done[-1] - done[0]) / 1e9


def summarise(runs: list[ArmRun], deadline_ms: float = REALTIME_P95_MS) -> dict:
    """Pooled figures of an arm over its rounds, plus a short line per round."""
    records = [r for run in runs for r in run.records]
    ok = [r for r in records if r.error is None]
    latency = np.asarray([r.latency_ms for r in ok], dtype=np.float64)
    intervals = sum(fps_of(run.records)[0] for run in runs)
    span = sum(fps_of(run.records)[1] for run in runs)
    out = {
        "frames_in": sum(run.frames_in for run in runs),
        "processed": len(records),
        "dropped": sum(run.dropped for run in runs),
        "backlog": sum(run.backlog for run in runs),
        "errors": len(records) - len(ok),
        "latency_ms": {k: _num(v) for k, v in percentiles(latency).items()},
        "fps": _num(intervals / span) if span > 0 else None,
        "deadline_misses": int((latency > deadline_ms).sum()),
        "stages_ms_p50": {s: _num(float(np.median([r.stages_ms[s] for r in ok if s in r.stages_ms])))
                          for s in ("wait", *STAGES) if any(s in r.stages_ms for r in ok)},
        "rounds": [],
    }
    for run in runs:
        lat = np.asarray([r.latency_ms for r in run.records if r.error is None], dtype=np.float64)
        n, s = fps_of(run.records)
        out["rounds"].append({"processed": len(run.records), "frames_in": run.frames_in, "dropped": run.dropped,
                              "p50_ms": _num(np.percentile(lat, 50)) if lat.size else None,
                              "p95_ms": _num(np.percentile(lat, 95)) if lat.size else None,
                              "fps": _num(n / s) if s > 0 else None, "wall_s": round(run.wall_s, 3),
                              "load_avg": run.load_avg})
    true = [r.true_dice for r in ok if r.true_dice is not None]
    if true:
        out["dice_mean"] = _num(float(np.mean(true)))
        out["n_labelled"] = len(true)
        pairs = [(r.predicted_dice, r.true_dice) for r in ok if r.true_dice is not None and r.predicted_dice is not None]
        cal = qc_calibration([p for p, _ in pairs], [t for _, t in pairs]) if pairs else {}
        out["qc_mae"] = _num(cal.get("qc_mae"))
        out["qc_pearson"] = _num(cal.get("qc_pearson"))
    return out


def reference_model(segs: list) -> str | None:
    """The modality's handcrafted reference: the float (unquantised) ``baseline-*`` seg model, first by id."""
    baselines = [c for c in segs if c.method.startswith("baseline")]
    floats = [c for c in baselines if not c.raw.get("quantization")]
    pick = sorted(floats or baselines, key=lambda c: c.id)
    return pick[0].id if pick else None


def plan_arms(sources: list[Source], models: dict[str, list[str]], defaults: dict[str, str],
              parts: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    """Every (source key, model id, runner, mode) to run, deduplicated, in a stable order."""
    arms: list[tuple[str, str, str, str]] = []
    for source in sources:
        ids = models.get(source.modality, [])
        if "a" in parts and source.modality in defaults:
            arms += [(source.key, defaults[source.modality], r, m) for r in RUNNERS for m in MODES]
        if "b" in parts:
            arms += [(source.key, i, "engine", m) for i in ids for m in MODES]
    return list(dict.fromkeys(arms))


def round_order(arms: list, seed: int, round_index: int) -> list:
    """The arms of one round in a seeded shuffled order (a different order every round)."""
    rng = np.random.default_rng([seed, round_index])
    return [arms[i] for i in rng.permutation(len(arms))]


def run_bench(*, sources: list[str], models_dir=None, rounds: int = 2, seconds: float = 5.0, seed: int = 0,
              parts: tuple[str, ...] = ("a", "b"), max_frames: int | None = None,
              intra_op_threads: int | None = None) -> dict:
    """Run every arm ``rounds`` times in shuffled order; return the report dict (see the module docstring)."""
    load_start = load_average()
    srcs = [probe_source(s) for s in sources]
    modalities = sorted({s.modality for s in srcs})
    pairs: dict[str, LoadedPair] = {}
    skipped: dict[str, str] = {}
    models: dict[str, list[str]] = {}
    defaults: dict[str, str] = {}
    references: dict[str, str | None] = {}
    cards = {}
    try:
        for modality in modalities:
            segs = [c for c in list_models(modality, models_dir) if c.role == "seg"]
            for card in segs:
                try:
                    pairs[card.id] = LoadedPair(card, qc_for(card, models_dir), intra_op_threads)
                    cards[card.id] = card
                    models.setdefault(modality, []).append(card.id)
                except ModelCardError as exc:
                    log.warning("skipping %s: %s", card.id, exc)
                    skipped[card.id] = exc.problem
            try:
                default_id = default_models(modality, models_dir)[0].id
            except ModelCardError as exc:
                skipped.setdefault(f"default {modality}", exc.problem)
                default_id = None
            if default_id in pairs:
                defaults[modality] = default_id
            references[modality] = reference_model([cards[i] for i in models.get(modality, [])])
        arms = plan_arms(srcs, models, defaults, parts)
        by_key = {s.key: s for s in srcs}
        runs: dict[tuple, list[ArmRun]] = {arm: [] for arm in arms}
        orders = []
        for k in range(rounds):
            order = round_order(arms, seed, k)
            orders.append(["|".join(a) for a in order])
            for arm in order:
                source_key, model_id, runner, mode = arm
                fn = run_engine if runner == "engine" else run_naive
                log.info("round %d: %s", k, arm)
                runs[arm].append(fn(pairs[model_id], by_key[source_key], mode, seconds, max_frames))
        report = {
            "machine": machine_description(), "cpu": _cpu_name(), "onnxruntime": _ort_version(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
            "settings": {"rounds": rounds, "seconds": seconds, "seed": seed, "parts": list(parts),
                         "max_frames": max_frames, "intra_op_threads": intra_op_threads or default_threads(),
                         "models_dir": str(models_dir) if models_dir else "models/",
                         "deadline_ms": REALTIME_P95_MS, "min_fps": REALTIME_FPS},
            "load_avg": {"start": load_start},
            "sources": [{"key": s.key, "spec": s.spec, "modality": s.modality, "slice": s.slice_index} for s in srcs],
            "models": {i: {"modality": p.seg.modality, "method": p.seg.method, "qc": p.qc.id if p.qc else None,
                           "quantization": bool(p.seg.raw.get("quantization")), "input_shape": list(p.seg.input_shape),
                           "load_s": round(p.load_s, 3), "card_latency_ms": p.seg.metrics.get("latency_ms"),
                           "onnx_sha256": str(p.seg.raw["onnx_sha256"])[:12], "created": p.seg.raw.get("created")}
                       for i, p in pairs.items()},
            "notes": [ENGINE_STAGE_NOTE], "skipped": skipped, "defaults": defaults, "references": references, "round_orders": orders,
            "arms": [{"source": a[0], "model": a[1], "runner": a[2], "mode": a[3], **summarise(runs[a])} for a in arms],
        }
    finally:
        for pair in pairs.values():
            pair.close()
    report["load_avg"]["end"] = load_average()
    report["rss_mb_end"] = _num(rss_mb())
    report["engine_vs_naive"] = compare_runners(report["arms"]) if "a" in parts else []
    report["models_table"] = compare_models(report) if "b" in parts else []
    return report


def _arm(arms: list[dict], source: str, model: str, runner: str, mode: str) -> dict | None:
    return next((a for a in arms if (a["source"], a["model"], a["runner"], a["mode"]) == (source, model, runner, mode)), None)


def compare_runners(arms: list[dict]) -> list[dict]:
    """Part (a): engine / naive ratios of FPS and latency p50/p95 per source and mode."""
    out = []
    for e in arms:
        if e["runner"] != "engine":
            continue
        n = _arm(arms, e["source"], e["model"], "naive", e["mode"])
        if n is None:
            continue
        out.append({"source": e["source"], "model": e["model"], "mode": e["mode"],
                    "engine": {"fps": e["fps"], "p50_ms": e["latency_ms"]["p50"], "p95_ms": e["latency_ms"]["p95"],
                               "processed": e["processed"], "dropped": e["dropped"]},
                    "naive": {"fps": n["fps"], "p50_ms": n["latency_ms"]["p50"], "p95_ms": n["latency_ms"]["p95"],
                              "processed": n["processed"], "backlog": n["backlog"]},
                    "fps_ratio": ratio(e["fps"], n["fps"]),
                    "p50_ratio": ratio(e["latency_ms"]["p50"], n["latency_ms"]["p50"]),
                    "p95_ratio": ratio(e["latency_ms"]["p95"], n["latency_ms"]["p95"]),
                    "per_round": [{"fps_ratio": ratio(re["fps"], rn["fps"]), "p50_ratio": ratio(re["p50_ms"], rn["p50_ms"]),
                                   "p95_ratio": ratio(re["p95_ms"], rn["p95_ms"])}
                                  for re, rn in zip(e["rounds"], n["rounds"])]})
    return out


def compare_models(report: dict) -> list[dict]:
    """Part (b): one row per (source, seg model), through the engine, with ratios to the modality's reference."""
    arms = report["arms"]
    rows = []
    for source in report["sources"]:
        ref_id = report["references"].get(source["modality"])
        ref_paced = _arm(arms, source["key"], ref_id, "engine", "paced") if ref_id else None
        ref_fast = _arm(arms, source["key"], ref_id, "engine", "fast") if ref_id else None
        for model_id, info in report["models"].items():
            paced = _arm(arms, source["key"], model_id, "engine", "paced")
            fast = _arm(arms, source["key"], model_id, "engine", "fast")
            if paced is None or fast is None:
                continue
            p95, fast_fps = paced["latency_ms"]["p95"], fast["fps"]
            row = {"source": source["key"], "model": model_id, "method": info["method"], "qc": info["qc"],
                   "reference": ref_id,
                   "paced": {"p50_ms": paced["latency_ms"]["p50"], "p95_ms": p95, "fps": paced["fps"],
                             "processed": paced["processed"], "dropped": paced["dropped"]},
                   "fast": {"p50_ms": fast["latency_ms"]["p50"], "p95_ms": fast["latency_ms"]["p95"], "fps": fast_fps,
                            "processed": fast["processed"]},
                   "segment_ms_p50": fast["stages_ms_p50"].get("segment"),
                   "dice_mean": fast.get("dice_mean"), "qc_mae": fast.get("qc_mae"),
                   "meets_latency": p95 is not None and p95 <= REALTIME_P95_MS,
                   "meets_fps": fast_fps is not None and fast_fps >= REALTIME_FPS}
            row["meets_budget"] = row["meets_latency"] and row["meets_fps"]
            row["ratio_to_reference"] = None if ref_paced is None or ref_fast is None else {
                "paced_p50": ratio(paced["latency_ms"]["p50"], ref_paced["latency_ms"]["p50"]),
                "paced_p95": ratio(p95, ref_paced["latency_ms"]["p95"]),
                "fast_p50": ratio(fast["latency_ms"]["p50"], ref_fast["latency_ms"]["p50"]),
                "fast_fps": ratio(fast_fps, ref_fast["fps"]),
                "segment_p50": ratio(fast["stages_ms_p50"].get("segment"), ref_fast["stages_ms_p50"].get("segment"))}
            rows.append(row)
    return rows


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def markdown(report: dict) -> str:
    """The report's two tables (and the load averages) as Markdown."""
    def f(v, nd=1):
        return "-" if v is None else f"{v:.{nd}f}"

    lines = [f"machine: {report['machine']} ({report['cpu']}); load avg start {report['load_avg']['start']}, "
             f"end {report['load_avg']['end']}; {report['settings']['rounds']} rounds x {report['settings']['seconds']} s "
             f"per arm, seed {report['settings']['seed']}", ""]
    if report["engine_vs_naive"]:
        lines += ["(a) engine vs naive sequential loop (same sessions, same frames)", "",
                  "| source | model | mode | engine fps | naive fps | fps ratio | engine p50/p95 ms | naive p50/p95 ms "
                  "| p50 ratio | p95 ratio | engine dropped | naive backlog |", "|" + "---|" * 12]
        for c in report["engine_vs_naive"]:
            e, n = c["engine"], c["naive"]
            lines.append(f"| {c['source']} | {c['model']} | {c['mode']} | {f(e['fps'])} | {f(n['fps'])} | "
                         f"{f(c['fps_ratio'], 2)} | {f(e['p50_ms'])} / {f(e['p95_ms'])} | {f(n['p50_ms'])} / {f(n['p95_ms'])} | "
                         f"{f(c['p50_ratio'], 2)} | {f(c['p95_ratio'], 2)} | {e['dropped']} | {n['backlog']} |")
        lines.append("")
    if report["models_table"]:
        lines += ["(b) every seg model through the engine (ratios: model / reference baseline, same source and mode)", "",
                  "| source | model | paced p50/p95 ms | paced fps | fast fps | seg ms p50 | Dice | QC MAE "
                  "| p95 ratio | fast fps ratio | meets 50 ms / 22 fps |", "|" + "---|" * 11]
        for r in report["models_table"]:
            rr = r["ratio_to_reference"] or {}
            lines.append(f"| {r['source']} | {r['model']} | {f(r['paced']['p50_ms'])} / {f(r['paced']['p95_ms'])} | "
                         f"{f(r['paced']['fps'])} | {f(r['fast']['fps'])} | {f(r['segment_ms_p50'])} | "
                         f"{f(r['dice_mean'], 3)} | {f(r['qc_mae'], 3)} | {f(rr.get('paced_p95'), 2)} | "
                         f"{f(rr.get('fast_fps'), 2)} | {'yes' if r['meets_budget'] else 'no'} "
                         f"({'ok' if r['meets_latency'] else 'slow'} / {'ok' if r['meets_fps'] else 'low'}) |")
    if report["skipped"]:
        lines += ["", "skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="shuffled rounds over all arms (default 2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per arm per round (default 5)")
    parser.add_argument("--models-dir", type=Path, default=None, help="model cards folder (default: models/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arm order (default 0)")
    parser.add_argument("--echo-source", action="append", default=None, metavar="SPEC",
                        help="echo source (repeatable; default: the demo echo and color3d_jpeg_baseline.dcm)")
    parser.add_argument("--cine-source", action="append", default=None, metavar="SPEC",
                        help="cine source (repeatable; default: the demo cine, middle slice)")
    parser.add_argument("--modalities", nargs="+", default=["echo", "cine"], choices=["echo", "cine"])
    parser.add_argument("--parts", nargs="+", default=["a", "b"], choices=["a", "b"],
                        help="a: engine vs naive loop; b: every model vs the reference baseline")
    parser.add_argument("--max-frames", type=int, default=None, help="stop each arm after this many frames")
    parser.add_argument("--intra-op-threads", type=int, default=None,
                        help="onnxruntime threads per operator (default: the engine's default_threads())")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    defaults = default_sources() if args.echo_source is None or args.cine_source is None else {}
    chosen = {"echo": args.echo_source or defaults.get("echo", []), "cine": args.cine_source or defaults.get("cine", [])}
    sources = [s for m in args.modalities for s in chosen[m]]
    try:
        report = run_bench(sources=sources, models_dir=args.models_dir, rounds=args.rounds, seconds=args.seconds,
                           seed=args.seed, parts=tuple(args.parts), max_frames=args.max_frames,
                           intra_op_threads=args.intra_op_threads)
    except (DataError, ModelCardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
