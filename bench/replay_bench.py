"""Replay benchmark: end-to-end latency, the pipeline's own overhead, and memory over a long run.

Three measurements, all with the app's own code (``app.engine``) and onnxruntime's CPU provider:

1. ``replay``: the real apical 4-chamber echo (``pydicom-data``'s ``color3d_jpeg_baseline.dcm``,
   30 fps) through ``app.engine.replay`` paced at its frame rate (and ``--fast`` for throughput).
2. ``overhead``: everything but model inference, per frame, on one thread: preprocess (crop
   already done by the source, resize, normalise), argmax + mask resize, overlay composition,
   Dice. Compared with the 5 ms budget at the model's input size.
3. ``memory``: the recording looped through player + pipeline for ``--minutes``; resident memory
   (``/proc/self/status`` VmRSS) sampled every few seconds; growth = median RSS of the last
   quarter minus median of the first quarter after warm-up (budget: 20 MB over 10 minutes).

Usage::

    python bench/replay_bench.py [--source SPEC] [--models-dir DIR] [--model ID] [--minutes 10]
                                 [--skip-memory] [--out bench.json]

Prints a summary and writes the JSON (with the machine description) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app.engine.models import default_models, find_model, qc_for
from app.engine.overlay import OverlayStyle, compose
from app.engine.pipeline import Pipeline
from app.engine.player import Player
from app.engine.preprocess import preprocess
from app.engine.replay import machine_description, replay
from app.engine.sources import open_source
from app.engine.stages import mask_at
from app.engine.stats import percentiles
from app.metrics import mean_dice

log = logging.getLogger("replay_bench")


def default_source() -> str:
    from pydicom.data import get_testdata_file

    return get_testdata_file("color3d_jpeg_baseline.dcm")


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def pick_models(modality: str, models_dir, model_id: str | None):
    if model_id is not None:
        seg = find_model(model_id, models_dir)
        return seg, qc_for(seg, models_dir)
    return default_models(modality, models_dir)


def measure_overhead(source_spec: str, seg, n_frames: int = 120, rng_seed: int = 0) -> dict:
    """Per-frame cost of the non-inference stages, single thread, milliseconds.

    Uses the model's real output shape with random probabilities (seeded) so the argmax, mask
    resize and overlay do the same work as in the pipeline, without running the network.
    """
    rng = np.random.default_rng(rng_seed)
    classes = len(seg.classes)
    shape = seg.input_shape
    height, width = shape[-2], shape[-1]
    style = OverlayStyle()
    foreground = tuple(c for c in seg.classes if c != 0)
    times = {"preprocess": [], "mask": [], "overlay": [], "dice": [], "total": []}
    with open_source(source_spec) as source:
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) >= n_frames:
                break
    clip_length = shape[2] if len(shape) == 5 else 1
    for k, frame in enumerate(frames):
        logits = rng.random((1, classes, height, width), dtype=np.float32)
        t0 = time.perf_counter_ns()
        if clip_length > 1:
            window = [frames[max(0, k - j)].image for j in range(clip_length - 1, -1, -1)]
            preprocess(np.stack(window), seg)
        else:
            preprocess(frame.image, seg)
        t1 = time.perf_counter_ns()
        mask = mask_at(logits, *frame.image.shape[:2])
        t2 = time.perf_counter_ns()
        compose(frame.image, mask, style)
        t3 = time.perf_counter_ns()
        mean_dice(mask, mask, foreground)
        t4 = time.perf_counter_ns()
        for name, a, b in (("preprocess", t0, t1), ("mask", t1, t2), ("overlay", t2, t3), ("dice", t3, t4),
                           ("total", t0, t4)):
            times[name].append((b - a) / 1e6)
    skip = min(5, len(frames) - 1)  # first calls allocate
    return {name: percentiles(np.asarray(v[skip:])) for name, v in times.items()} | {
        "frames": len(frames) - skip, "frame_shape": list(frames[0].image.shape), "model_input": list(shape)}


def measure_memory(source_spec: str, seg, qc, minutes: float, sample_s: float = 5.0) -> dict:
    """Loop the recording paced through player + pipeline; sample RSS; report growth."""
    source = open_source(source_spec)
    counted = {"results": 0}
    lock = threading.Lock()

    def on_result(result) -> None:
        with lock:
            counted["results"] += 1

    pipeline = Pipeline(seg, qc, on_result=on_result)
    player = Player(source, pipeline.submit, paced=True, loop=source.seekable)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    player.start()
    try:
        while time.monotonic() - t0 < minutes * 60.0 and player.running:
            samples.append((time.monotonic() - t0, rss_mb()))
            time.sleep(sample_s)
    finally:
        player.stop()
        pipeline.drain(timeout=30)
        stats = pipeline.stats()
        pipeline.close()
        source.close()
    rss = np.asarray([r for _, r in samples])
    quarter = max(1, len(rss) // 4)
    warm = rss[1:] if len(rss) > 2 else rss  # the first sample precedes steady state
    q = max(1, len(warm) // 4)
    growth = float(np.median(warm[-q:]) - np.median(warm[:q])) if len(warm) else float("nan")
    return {"minutes": minutes, "samples": len(rss), "rss_mb_first": float(rss[0]) if len(rss) else None,
            "rss_mb_last": float(rss[-1]) if len(rss) else None, "rss_mb_max": float(rss.max()) if len(rss) else None,
            "growth_mb": growth, "quarter": quarter, "frames_in": stats.frames_in, "processed": stats.processed,
            "dropped": stats.dropped, "errors": stats.errors, "results": counted["results"],
            "rss_trace": [[round(t, 1), round(r, 2)] for t, r in samples]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=None, help="source spec (default: the real apical echo from pydicom-data)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--model", default=None, help="segmentation model id (default: the modality's default)")
    parser.add_argument("--minutes", type=float, default=10.0, help="memory check duration (default 10)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-fast", action="store_true")
    parser.add_argument("--slice", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    spec = args.source or default_source()
    with open_source(spec) as probe:
        modality = probe.info.modality or "echo"
    seg, qc = pick_models(modality, args.models_dir, args.model)
    out: dict = {"machine": machine_description(), "source": spec if args.source else "color3d_jpeg_baseline.dcm",
                 "seg": seg.id, "qc": qc.id if qc else None}
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(model_id=seg.id, models_dir=args.models_dir, slice_index=args.slice)
        out["replay_paced"] = replay(spec, report=Path(tmp) / "paced.json", **common)
        if not args.skip_fast:
            out["replay_fast"] = replay(spec, report=Path(tmp) / "fast.json", fast=True, **common)
    out["overhead_ms"] = measure_overhead(spec, seg)
    if not args.skip_memory:
        out["memory"] = measure_memory(spec, seg, qc, args.minutes)

    paced = out["replay_paced"]
    print(f"machine   {out['machine']}")
    print(f"models    seg {seg.id}, qc {out['qc']}")
    for key in ("replay_paced", "replay_fast"):
        if key in out:
            r = out[key]
            print(f"{key:<13} p50 {r['latency_ms']['p50']:.1f}  p95 {r['latency_ms']['p95']:.1f}  "
                  f"max {r['latency_ms']['max']:.1f} ms, {r['fps']:.1f} fps, dropped {r['dropped']}, "
                  f"misses {r['deadline_misses']}, in-pipeline overhead p50 {r['overhead_ms']['p50']:.2f} ms, "
                  f"realtime {r['meets_realtime']}")
    oh = out["overhead_ms"]
    print(f"overhead  (single thread, no inference) p50 {oh['total']['p50']:.2f} ms  p95 {oh['total']['p95']:.2f} ms "
          f"[preprocess {oh['preprocess']['p50']:.2f}, mask {oh['mask']['p50']:.2f}, overlay {oh['overlay']['p50']:.2f}, "
          f"dice {oh['dice']['p50']:.2f}] frame {oh['frame_shape']} -> {oh['model_input']}")
    if "memory" in out:
        m = out["memory"]
        print(f"memory    {m['minutes']} min, {m['processed']} frames: RSS {m['rss_mb_first']:.1f} -> "
              f"{m['rss_mb_last']:.1f} MB (max {m['rss_mb_max']:.1f}), growth {m['growth_mb']:+.2f} MB")
    del paced
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1, allow_nan=False) + "\n")
        print(f"wrote     {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
