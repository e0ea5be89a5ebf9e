"""Session recording: written as it happens, readable mid-session, closed cleanly."""

import csv
import json
import time

import cv2
import numpy as np
import pytest

from app.engine.types import Frame, FrameResult
from app.viewer.quality import QualityThresholds
from app.viewer.recording import CSV_COLUMNS, SessionRecorder, new_session_folder


def _result(i: int, dice: float | None = 0.9, error: str | None = None) -> FrameResult:
    rng = np.random.default_rng(i)
    mask = rng.integers(0, 4, size=(12, 16), dtype=np.uint8)
    t0 = time.perf_counter_ns()
    ts = {"arrival": t0, "preprocessed": t0 + 1_000_000, "segmented": t0 + 5_000_000, "qc": t0 + 6_000_000,
          "overlay": t0 + 7_000_000}
    frame = Frame(index=i, image=np.zeros((12, 16), np.uint8), t_arrival=t0, meta={"slice": 2})
    return FrameResult(frame=frame, mask=None if error else mask, predicted_dice=dice, timestamps=ts, error=error)


def _wait(predicate, timeout=10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_rows_masks_and_log_are_on_disk_before_close(tmp_path) -> None:
    folder = new_session_folder(tmp_path)
    rec = SessionRecorder(folder, {"source": "phantom echo seed 0", "model_id": "m1"},
                          thresholds=QualityThresholds(good=0.8, fair=0.7))
    results = [_result(0, 0.9), _result(1, 0.75), _result(2, 0.3), _result(3, None, error="boom")]
    for r in results:
        rec.submit(r)
    rec.log_event("quality_alert", frame_index=2, stages={"qc": float("nan")})
    _wait(lambda: rec.written == 4)
    # Not closed: an interrupted session must already have everything on disk.
    rows = list(csv.DictReader(open(folder / "frames.csv", newline="")))
    assert [int(r["frame_index"]) for r in rows] == [0, 1, 2, 3]
    assert [r["quality"] for r in rows] == ["good", "fair", "poor", "unknown"]
    assert rows[0]["latency_ms"] == "7.000" and rows[0]["segment_ms"] == "4.000"
    assert rows[3]["error"] == "boom" and rows[3]["predicted_dice"] == ""
    assert rows[0]["slice"] == "2" and rows[0]["model_id"] == "m1"
    masks = sorted((folder / "masks").glob("*.png"))
    assert len(masks) == 3  # the failed frame has no mask
    np.testing.assert_array_equal(cv2.imread(str(masks[2]), cv2.IMREAD_UNCHANGED), results[2].mask)
    _wait(lambda: "quality_alert" in (folder / "qc_log.jsonl").read_text())
    meta = json.loads((folder / "session.json").read_text())
    assert meta["ended"] is None and meta["model_id"] == "m1"
    rec.close()
    rec.close()  # idempotent
    lines = [json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
             for line in open(folder / "qc_log.jsonl")]
    assert next(e for e in lines if e["event"] == "quality_alert")["stages"] == {"qc": None}
    events = [e["event"] for e in lines]
    assert events[0] == "recording_started" and events[-1] == "recording_stopped"
    meta = json.loads((folder / "session.json").read_text())
    assert meta["ended"] is not None and meta["frames"] == 4
    assert list(csv.reader(open(folder / "frames.csv")))[0] == list(CSV_COLUMNS)


def test_session_folders_never_collide(tmp_path) -> None:
    a, b = new_session_folder(tmp_path), new_session_folder(tmp_path)
    assert a != b and a.is_dir() and b.is_dir()


CRASH = """
import sys, time
sys.path.insert(0, sys.argv[2])
from test_recording import _result
from app.viewer.recording import SessionRecorder
rec = SessionRecorder(sys.argv[1], {"model_id": "m"})
for i in range(6):
    rec.submit(_result(i))
while rec.written < 6:
    time.sleep(0.01)
import os
os._exit(3)  # a crash: no close(), no atexit, no flush of Python buffers
"""


def test_a_crashed_session_keeps_every_frame_written(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    folder = new_session_folder(tmp_path)
    out = subprocess.run([sys.executable, "-c", CRASH, str(folder), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 3, out.stderr
    rows = list(csv.DictReader(open(folder / "frames.csv", newline="")))
    assert [int(r["frame_index"]) for r in rows] == list(range(6))
    assert len(list((folder / "masks").glob("*.png"))) == 6
    assert not list((folder / "masks").glob("*.tmp.png"))
    assert json.loads((folder / "session.json").read_text())["ended"] is None
    assert json.loads(open(folder / "qc_log.jsonl").readline())["event"] == "recording_started"
