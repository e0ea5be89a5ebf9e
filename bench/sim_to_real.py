"""Sim-to-real: what the shipped echo models do on a real apical 4-chamber recording (issue 18 item 6).

Every shipped model was trained on phantoms. This runs the one real A4C B-mode echo the project can
ship a test with (``pydicom-data``'s ``color3d_jpeg_baseline.dcm``, the README's replay example)
through the app's real pipeline, exactly as ``python -m app replay SOURCE --fast`` does
(``app.engine.replay.replay``: the same source, preprocessing, models, QC and overlay), with one
onnxruntime thread:

1. the echo mode auto-detected (``--echo-mode auto``, what the viewer and ``replay`` do): the report
   says which mode was detected, why, and which model pair ran;
2. for comparison, the other echo mode forced (the contrast pair after a B-mode detection, or the
   B-mode pair after a contrast one), as a user overriding the choice in the Models panel would.

The recording has no ground truth, so there is no Dice here: only the QC's *predicted* Dice per
frame (min / median / max, and the share of frames the viewer's traffic light shows green, amber
and red, ``app.viewer.quality.QualityThresholds``), a description of the masks (share of the frame
each class covers, connected pieces per class), and a PNG montage of the overlay the viewer shows on
evenly spaced frames (``FrameResult.overlay``, composed by ``app.engine.overlay.compose`` in the
pipeline), with each frame's predicted Dice and light. Look at the montage before quoting the figures.

    python bench/sim_to_real.py                       # the pydicom-data recording -> docs/bench/
    python bench/sim_to_real.py --source my_a4c.dcm --out /tmp/s2r --frames 8

Writes ``sim_to_real.png``, ``sim_to_real.json`` and ``sim_to_real.md`` to ``--out`` (default
``docs/bench``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/sim_to_real.py``
    sys.path.insert(0, str(ROOT))

PYDICOM_FILE = "color3d_jpeg_baseline.dcm"
TILE_WIDTH = 320
COLUMNS = 3
LIGHT_RGB = {"green": (40, 170, 70), "amber": (235, 160, 20), "red": (210, 40, 40), "unknown": (128, 128, 128)}


def default_source() -> str:
    """The real A4C echo shipped by ``pydicom-data`` (a test extra of this project)."""
    from pydicom.data import get_testdata_file

    return get_testdata_file(PYDICOM_FILE)


def light(dice: float | None) -> str:
    """The viewer's traffic-light colour of a predicted Dice (its default thresholds)."""
    from app.viewer.quality import Quality, QualityThresholds

    return {Quality.GOOD: "green", Quality.FAIR: "amber", Quality.POOR: "red",
            Quality.UNKNOWN: "unknown"}[QualityThresholds().classify(dice)]


def pick_frames(n: int, k: int) -> list[int]:
    """``k`` frame indices spread evenly over ``0..n-1`` (first and last included)."""
    if n <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(k, n))})


# -- one replay -------------------------------------------------------------------------------------
class Collector:
    """The replay's ``on_result`` hook (pipeline delivery thread): per-frame QC and mask figures,
    and a copy of the overlay of the frames picked for the montage."""

    def __init__(self, keep: set[int]):
        self.keep = keep
        self.frames: dict[int, dict] = {}
        self.overlays: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()

    def __call__(self, result) -> None:
        entry = {"index": result.frame.index, "predicted_dice": result.predicted_dice, "error": result.error}
        if result.mask is not None:
            mask = result.mask
            entry["coverage"], entry["pieces"] = {}, {}
            for c in (int(v) for v in np.unique(mask) if v != 0):
                entry["coverage"][c] = float(np.count_nonzero(mask == c)) / mask.size
                entry["pieces"][c] = int(cv2.connectedComponents((mask == c).view(np.uint8), connectivity=8)[0] - 1)
        with self.lock:
            self.frames[result.frame.index] = entry
            if result.frame.index in self.keep and result.overlay is not None:
                self.overlays[result.frame.index] = result.overlay.copy()


def _r(value, digits: int = 4):
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def summarise_run(report: dict, collector: Collector, seg, frames_shown: list[int]) -> dict:
    """One run's figures: QC predicted Dice, the traffic light, the masks, latency."""
    frames = [collector.frames[i] for i in sorted(collector.frames)]
    dice = np.asarray([f["predicted_dice"] for f in frames if f["predicted_dice"] is not None], dtype=np.float64)
    lights = [light(f["predicted_dice"]) for f in frames if f["error"] is None]
    counts = {c: lights.count(c) for c in ("green", "amber", "red", "unknown")}
    n = len(lights)
    classes = {c: n_ for c, n_ in seg.classes.items() if c != 0}
    masks = {}
    for c, name in classes.items():
        cover = [f["coverage"].get(c, 0.0) for f in frames if "coverage" in f]
        pieces = [f["pieces"].get(c, 0) for f in frames if "coverage" in f]
        masks[name] = {
            "label": c,
            "frames_present": sum(p > 0 for p in pieces),
            "coverage_median": _r(float(np.median(cover))) if cover else None,
            "coverage_max": _r(float(np.max(cover))) if cover else None,
            "pieces_median": float(np.median(pieces)) if pieces else None,
            "pieces_max": int(np.max(pieces)) if pieces else None,
        }
    return {
        "requested": (report.get("echo_mode") or {}).get("requested"),
        "echo_mode": report.get("echo_mode"),
        "models": report["models"],
        "classes": {str(c): n_ for c, n_ in seg.classes.items()},
        "frames": report["frames"], "processed": report["processed"], "errors": report["errors"],
        "qc_predicted_dice": {
            "n": int(dice.size),
            "min": _r(dice.min()) if dice.size else None,
            "median": _r(float(np.median(dice))) if dice.size else None,
            "max": _r(dice.max()) if dice.size else None,
            "mean": _r(dice.mean()) if dice.size else None,
        },
        "traffic_light": {"counts": counts, "share": {c: _r(k / n, 3) if n else None for c, k in counts.items()}},
        "masks": masks,
        "montage_frames": frames_shown,
        "per_frame": [{"index": f["index"], "predicted_dice": _r(f["predicted_dice"]), "light": light(f["predicted_dice"])}
                      for f in frames],
        "latency_ms": {k: report["latency_ms"].get(k) for k in ("p50", "p95")},
        "fps": report["fps"],
        "mode": report["mode"],
    }


def run_once(source: str, echo_mode: str, *, models_dir=None, name: str | None, threads: int,
             frames_shown: int, max_frames: int | None, tmp: Path) -> tuple[dict, dict[int, np.ndarray]]:
    """``replay --fast`` of ``source`` with ``echo_mode``; returns the run's summary and its montage overlays."""
    from app.engine.models import find_model
    from app.engine.replay import replay
    from app.engine.sources import open_source

    probe = open_source(source)
    try:
        n = probe.info.n_frames or 0
    finally:
        probe.close()
    n = min(n, max_frames) if max_frames else n
    shown = pick_frames(n, frames_shown)
    collector = Collector(set(shown))
    report = replay(source, report=tmp / f"replay-{echo_mode}.json", fast=True, models_dir=models_dir,
                    max_frames=max_frames, name=name, on_result=collector, echo_mode=echo_mode,
                    intra_op_threads=threads)
    seg = find_model(report["models"]["seg"], models_dir)
    summary = summarise_run(report, collector, seg, [i for i in shown if i in collector.overlays])
    summary["source"] = report["source"]
    return summary, collector.overlays


# -- the montage ------------------------------------------------------------------------------------
def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, colour=(20, 20, 20),
          thickness: int = 1) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def _tile(overlay: np.ndarray, index: int, dice: float | None) -> np.ndarray:
    h, w = overlay.shape[:2]
    height = int(round(h * TILE_WIDTH / w))
    image = cv2.resize(overlay, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    caption = np.full((26, TILE_WIDTH, 3), 255, np.uint8)
    colour = light(dice)
    cv2.circle(caption, (12, 13), 7, LIGHT_RGB[colour], -1, cv2.LINE_AA)
    value = "-" if dice is None else f"{dice:.2f}"
    _text(caption, f"frame {index}   QC predicted Dice {value} ({colour})", (26, 18), 0.45)
    return np.vstack([image, caption])


def _strip(per_frame: list[dict], width: int) -> np.ndarray:
    """Predicted Dice over the frames, with the traffic-light thresholds (0.7, 0.8)."""
    from app.viewer.quality import QualityThresholds

    t = QualityThresholds()
    h, left, right, top, bottom = 110, 40, 12, 10, 22
    img = np.full((h, width, 3), 255, np.uint8)
    x0, x1, y0, y1 = left, width - right, top, h - bottom

    def y(v: float) -> int:
        return int(round(y1 - min(max(v, 0.0), 1.0) * (y1 - y0)))

    for v in (0.0, 0.5, 1.0):
        cv2.line(img, (x0, y(v)), (x1, y(v)), (225, 225, 225), 1)
        _text(img, f"{v:.1f}", (6, y(v) + 4), 0.35)
    cv2.line(img, (x0, y(t.good)), (x1, y(t.good)), LIGHT_RGB["green"], 1)
    cv2.line(img, (x0, y(t.fair)), (x1, y(t.fair)), LIGHT_RGB["red"], 1)
    n = max(1, max((f["index"] for f in per_frame), default=0))
    for f in per_frame:
        if f["predicted_dice"] is None:
            continue
        x = int(round(x0 + f["index"] / n * (x1 - x0)))
        cv2.circle(img, (x, y(f["predicted_dice"])), 2, LIGHT_RGB[f["light"]], -1, cv2.LINE_AA)
    _text(img, f"QC predicted Dice per frame (0..{n}); green line {t.good:.2f}, red line {t.fair:.2f}",
          (x0, h - 6), 0.4)
    return img


def _section(run: dict, overlays: dict[int, np.ndarray]) -> np.ndarray:
    """A titled grid of the run's montage frames, a legend of its classes and its QC strip."""
    from app.engine.overlay import DEFAULT_COLORS

    by_index = {f["index"]: f["predicted_dice"] for f in run["per_frame"]}
    tiles = [_tile(overlays[i], i, by_index.get(i)) for i in run["montage_frames"]]
    width = TILE_WIDTH * COLUMNS
    head = np.full((56, width, 3), 255, np.uint8)
    echo = run.get("echo_mode") or {}
    _text(head, f"{run['models']['seg']} + {run['models']['qc'] or 'no QC'}   (echo mode {echo.get('requested')}: "
                f"{echo.get('mode')})", (8, 20), 0.55, thickness=1)
    x = 8
    for label, name in ((int(k), v) for k, v in run["classes"].items()):
        if label == 0:
            continue
        cv2.rectangle(head, (x, 32), (x + 14, 46), DEFAULT_COLORS.get(label, (0, 0, 0)), -1)
        _text(head, name, (x + 20, 45), 0.45)
        x += 30 + 10 * len(name)
    if not tiles:
        return np.vstack([head, _strip(run["per_frame"], width)])
    tile_h = max(t.shape[0] for t in tiles)
    rows = []
    for r in range(0, len(tiles), COLUMNS):
        row = [np.pad(t, ((0, tile_h - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles[r:r + COLUMNS]]
        row += [np.full((tile_h, TILE_WIDTH, 3), 255, np.uint8)] * (COLUMNS - len(row))
        rows.append(np.hstack(row))
    return np.vstack([head, *rows, _strip(run["per_frame"], width)])


def write_montage(path: Path, runs: list[tuple[dict, dict[int, np.ndarray]]], title: str) -> Path:
    """One PNG: a section per run, stacked, under a title line (written with OpenCV)."""
    sections = [_section(run, overlays) for run, overlays in runs]
    width = max(s.shape[1] for s in sections)
    top = np.full((34, width, 3), 255, np.uint8)
    _text(top, title, (8, 22), 0.55, thickness=1)
    gap = np.full((10, width, 3), 200, np.uint8)
    parts = [top]
    for s in sections:
        parts += [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255), gap]
    image = np.vstack(parts[:-1])
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    return path


# -- the whole check --------------------------------------------------------------------------------
def machine(threads: int) -> dict:
    import onnxruntime as ort

    from app.engine.benchmark import cpu_name, machine_state
    from app.engine.replay import machine_description

    return {"platform": platform.platform(), "cpu": cpu_name(), "cores": os.cpu_count(),
            "description": machine_description(), "onnxruntime": ort.__version__,
            "intra_op_threads": threads, **machine_state()}


def run(source: str | None = None, *, models_dir=None, threads: int = 1, frames_shown: int = 6,
        max_frames: int | None = None, log=print) -> tuple[dict, list[tuple[dict, dict[int, np.ndarray]]]]:
    """The auto-detected run and the other echo mode forced; returns the result and the montage inputs."""
    shipped = source is None
    spec = default_source() if shipped else str(source)
    name = f"pydicom-data {PYDICOM_FILE}" if shipped else None  # a user's file is named by replay (kind + hash)
    t0 = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="sim2real-") as tmp:
        auto, overlays = run_once(spec, "auto", models_dir=models_dir, name=name, threads=threads,
                                  frames_shown=frames_shown, max_frames=max_frames, tmp=Path(tmp))
        runs.append((auto, overlays))
        log(f"auto: {auto['echo_mode']['mode'] if auto['echo_mode'] else '-'} -> {auto['models']['seg']}, "
            f"QC median {auto['qc_predicted_dice']['median']}")
        other = "contrast" if (auto["echo_mode"] or {}).get("mode") == "bmode" else "bmode"
        forced, overlays = run_once(spec, other, models_dir=models_dir, name=name, threads=threads,
                                    frames_shown=frames_shown, max_frames=max_frames, tmp=Path(tmp))
        log(f"{other} forced -> {forced['models']['seg']}, QC median {forced['qc_predicted_dice']['median']}")
        if forced["models"] == auto["models"]:
            forced["same_models_as_auto"] = True
        runs.append((forced, overlays))
    result = {
        "source": {**auto["source"], "file": PYDICOM_FILE if shipped else None,
                   "origin": "pydicom-data (real apical 4-chamber echo, no ground truth)" if shipped else "user"},
        "detected": {"mode": (auto["echo_mode"] or {}).get("mode"), "reason": (auto["echo_mode"] or {}).get("reason")},
        "ground_truth": None,
        "thresholds": _thresholds(),
        "runs": [r for r, _ in runs],
        "machine": machine(threads),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    for r in result["runs"]:
        r.pop("source", None)
    return result, runs


def _thresholds() -> dict:
    from app.viewer.quality import QualityThresholds

    t = QualityThresholds()
    return {"green_at_or_above": t.good, "amber_at_or_above": t.fair}


def _f(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict, png_name: str = "sim_to_real.png") -> str:
    src, m, t = result["source"], result["machine"], result["thresholds"]
    what = f"`{src['file']}` from pydicom-data" if src.get("file") else f"`{src['name']}`"
    lines = [
        "# Sim-to-real: the shipped echo models on a real A4C recording (issue 18 item 6)", "",
        f"Run {result['date']} on {m['cpu']} ({m['description']}; {m['platform']}), "
        f"{m['intra_op_threads']} onnxruntime thread, `replay --fast` (every frame, unpaced); took {result['elapsed_s']} s"
        f" (load average {m.get('load_avg')}: frame rates are for the record, not a benchmark).",
        "",
        f"Recording: {what}, {src['n_frames']} frames at {_f(src['frame_rate'], 1)} fps. It has **no ground truth**, so "
        "there is no Dice here: only what the QC model *predicts* the Dice is, and the overlay itself.",
        "",
        f"Echo mode detected: **{result['detected']['mode']}** ({result['detected']['reason']}).",
        "",
        f"Traffic light (the viewer's defaults): green at predicted Dice >= {t['green_at_or_above']}, amber >= "
        f"{t['amber_at_or_above']}, red below.",
        "",
        "| run | models (seg + QC) | frames | QC predicted Dice min / median / max | green / amber / red | "
        "mask: share of frame per class (median) | pieces per class (median) | fps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        q, share = r["qc_predicted_dice"], r["traffic_light"]["share"]
        echo = r["echo_mode"] or {}
        label = f"{echo.get('requested')} ({echo.get('mode')})"
        cover = ", ".join(f"{n} {_f(k['coverage_median'] * 100 if k['coverage_median'] is not None else None)}%"
                          for n, k in r["masks"].items())
        pieces = ", ".join(f"{n} {_f(k['pieces_median'], 0)}" for n, k in r["masks"].items())
        lines.append(f"| {label} | {r['models']['seg']} + {r['models']['qc'] or '-'} | {r['processed']} | "
                     f"{_f(q['min'])} / {_f(q['median'])} / {_f(q['max'])} | "
                     f"{_f(share['green'] * 100 if share['green'] is not None else None, 0)}% / "
                     f"{_f(share['amber'] * 100 if share['amber'] is not None else None, 0)}% / "
                     f"{_f(share['red'] * 100 if share['red'] is not None else None, 0)}% | {cover} | {pieces} | "
                     f"{_f(r['fps'], 1)} |")
        if echo.get("note"):
            lines.append(f"|  | note: {echo['note']} |  |  |  |  |  |  |")
    lines += ["", f"![overlay on evenly spaced frames]({png_name})", "",
              "Montage: the overlay the viewer shows (the pipeline's own composition) on frames "
              + ", ".join(str(i) for i in result["runs"][0]["montage_frames"])
              + "; under each frame its QC predicted Dice and light; under each run the predicted Dice of every frame.",
              ""]
    if result.get("observations"):
        lines += ["## What the figures show", "",
                  "Written by a person looking at this run's montage (a rerun without `--observations` leaves this "
                  "section out).", "", *[f"- {o}" for o in result["observations"]], ""]
    lines += [f"Regenerate: `{result.get('command', 'python bench/sim_to_real.py')}`", ""]
    return "\n".join(lines)


def write_outputs(result: dict, runs, out: Path) -> tuple[Path, Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    png = write_montage(out / "sim_to_real.png", runs,
                        f"Real A4C echo ({result['source']['name']}), no ground truth: overlays and QC predicted Dice")
    result["png"] = png.name
    js, md = out / "sim_to_real.json", out / "sim_to_real.md"
    js.write_text(json.dumps(result, indent=1) + "\n")
    md.write_text(markdown(result, png.name))
    return png, js, md


def _command(argv: list[str]) -> str:
    """The command line as run, a user's ``--source`` shown as SOURCE (a file name may name the patient),
    ``--observations`` left out (a rerun has not been looked at)."""
    shown, skip = [], None
    for arg in argv:
        if skip:
            shown += ["SOURCE"] if skip == "--source" else []
            skip = None
        elif arg in ("--source", "--observations"):
            skip = arg
            shown += [arg] if arg == "--source" else []
        elif arg.startswith("--source="):
            shown.append("--source=SOURCE")
        elif not arg.startswith("--observations="):
            shown.append(arg)
    return " ".join(["python bench/sim_to_real.py", *shown])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", help=f"an echo recording (default: pydicom-data's {PYDICOM_FILE})")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench",
                    help="folder for sim_to_real.{png,json,md} (default docs/bench)")
    ap.add_argument("--models-dir", type=Path, help="folder of model cards (default: the shipped models/)")
    ap.add_argument("--frames", type=int, default=6, help="frames in the montage, evenly spaced (default 6)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per operator (default 1)")
    ap.add_argument("--max-frames", type=int, help="stop each run after this many frames (default: all)")
    ap.add_argument("--observations", type=Path,
                    help="a text file, one observation per line, written into the report as 'What the figures show'")
    args = ap.parse_args(argv)
    for opt in ("frames", "threads", "max_frames"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            ap.error(f"--{opt.replace('_', '-')} must be at least 1, got {value}")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from app.cards import ModelCardError
    from app.data.case import DataError

    try:
        result, runs = run(args.source, models_dir=args.models_dir, threads=args.threads, frames_shown=args.frames,
                           max_frames=args.max_frames)
    except (DataError, ModelCardError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.observations is not None:
        result["observations"] = [line.strip() for line in args.observations.read_text().splitlines() if line.strip()]
    result["command"] = _command(argv if argv is not None else sys.argv[1:])
    png, js, md = write_outputs(result, runs, args.out)
    print(markdown(result, png.name))
    print(f"wrote {png}, {js} and {md}")
    return 1 if any(r["errors"] for r in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
