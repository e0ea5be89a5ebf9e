"""Headless replay: the report's contract, ground truth, optional outputs, the CLI, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from app.engine.replay import replay

pytestmark = pytest.mark.timeout(120)

REQUIRED = {"frames", "processed", "dropped", "latency_ms", "fps", "deadline_misses", "meets_realtime"}
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def phantom_echo_dicom(tmp_path_factory) -> Path:
    """A small phantom echo written as DICOM with its mask file beside it (ground truth)."""
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    folder = tmp_path_factory.mktemp("echo")
    return write_echo_dicom(render_echo_case(5, 0, n_frames=8, size=64), folder / "phantom.dcm", 1)


@pytest.fixture(scope="module")
def phantom_cine_patient(tmp_path_factory) -> Path:
    from app.data.phantom.cine import render_cine_case
    from app.data.writers import write_acdc_patient

    case = render_cine_case(5, 0, n_frames=6, n_slices=3, shape=(48, 40))
    return write_acdc_patient(case, tmp_path_factory.mktemp("acdc"), 1)


def test_replay_with_ground_truth_writes_report_csv_and_masks(phantom_echo_dicom, models_dir, tmp_path):
    report = replay(str(phantom_echo_dicom), report=tmp_path / "r.json", fast=True, models_dir=models_dir,
                    masks_out=tmp_path / "m.nii.gz", csv_out=tmp_path / "r.csv")
    assert REQUIRED <= set(report)
    assert report["frames"] == 8 and report["processed"] == 8 and report["dropped"] == 0 and report["errors"] == 0
    assert set(report["latency_ms"]) == {"p50", "p90", "p95", "p99", "p99.9", "max"}
    lat = report["latency_ms"]
    assert lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert report["excluded_warmup_frames"] == report["excluded_tail_frames"] == 0  # 8 frames: nothing left out
    assert report["complete"] is True and "interrupted" not in report
    assert 0.0 <= report["dice_mean"] <= 1.0 and report["n_labelled"] == 8
    assert report["qc_mae"] is not None and 0.0 <= report["qc_mae"] <= 1.0
    assert "qc_pearson" in report
    assert report["meets_realtime"] == (report["latency_ms"]["p95"] <= 50 and report["fps"] >= 22)
    assert json.loads((tmp_path / "r.json").read_text()) == {k: v for k, v in report.items() if k != "csv"}
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [int(r["index"]) for r in rows] == list(range(8))
    assert all(float(r["latency_ms"]) > 0 and r["true_dice"] != "" for r in rows)
    import nibabel as nib

    masks = np.asarray(nib.load(str(tmp_path / "m.nii.gz")).dataobj)
    assert masks.shape == (64, 64, 8) and masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1}


def test_paced_replay_of_a_cine_slice(phantom_cine_patient, models_dir, tmp_path):
    report = replay(str(phantom_cine_patient), report=tmp_path / "c.json", models_dir=models_dir, slice_index=1)
    assert report["source"]["modality"] == "cine" and report["source"]["slice"] == 1
    assert report["models"] == {"seg": "tiny-cine-seg", "qc": None}
    assert report["frames"] == 6 and report["processed"] + report["dropped"] == 6 and report["processed"] >= 1
    assert report["mode"] == "paced" and report["dice_mean"] is not None
    assert report["qc_mae"] is None  # no QC model for cine


def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def test_report_holds_no_patient_identifiers(models_dir, tmp_path):
    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    identifiers = [str(ds.get(t, "") or "") for t in ("PatientName", "PatientID", "PatientBirthDate")]
    identifiers = [v for v in identifiers if v]
    assert identifiers  # the file has some (name "PLA", ID "204")
    replay(path, report=tmp_path / "r.json", fast=True, models_dir=models_dir, max_frames=4)
    # numbers may contain "204" by chance; no text field may carry an identifier
    strings = list(_strings(json.loads((tmp_path / "r.json").read_text())))
    assert not [s for s in strings for v in identifiers if v in s]


def test_cli_real_echo_fast_with_summary(models_dir, tmp_path):
    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "replay", path, "--report", str(tmp_path / "r.json"), "--fast",
         "--max-frames", "6", "--models-dir", str(models_dir), "--model", "tiny-echo-seg"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "latency" in proc.stdout and "realtime" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames"] == 6 and report["processed"] == 6 and report["source"]["frame_rate"] == pytest.approx(30, abs=0.1)


def test_cli_bad_source_and_unknown_model_exit_2(models_dir, tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all" * 10)
    proc = subprocess.run([sys.executable, "-m", "app", "replay", str(bad), "--report", str(tmp_path / "r.json"),
                           "--models-dir", str(models_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "bad.dcm" in proc.stderr and not (tmp_path / "r.json").exists()
    proc = subprocess.run([sys.executable, "-m", "app", "replay", get_testdata_file("examples_ybr_color.dcm"),
                           "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir), "--model", "nope"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no model 'nope'" in proc.stderr


def test_live_phantom_replay_stops_at_max_frames(models_dir, tmp_path):
    report = replay("phantom:echo?frames=4&seed=1", report=tmp_path / "p.json", fast=True, models_dir=models_dir,
                    max_frames=6)
    assert report["frames"] == 6 and report["processed"] == 6 and report["dice_mean"] is not None


def test_models_cli_lists_and_verifies(models_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "app", "models", "--models-dir", str(models_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tiny-echo-seg" in proc.stdout and "tiny-cine-seg" in proc.stdout and proc.stdout.count(" ok") == 3
    marked = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("* ") and " ok" in line}
    assert marked == {"tiny-echo-seg", "tiny-echo-qc", "tiny-cine-seg"}  # each modality's default
    import shutil

    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    with open(broken / "tiny-echo-seg.onnx", "ab") as fh:
        fh.write(b"x")
    proc = subprocess.run([sys.executable, "-m", "app", "models", "--models-dir", str(broken)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "BAD: sha256" in proc.stdout


def test_source_that_fails_mid_stream_still_gives_a_report(models_dir, tmp_path, monkeypatch):
    from app.data.case import DataError
    from app.engine import replay as replay_module
    from app.engine.sources import open_source as real_open

    class Disconnecting:
        """The first 5 frames of a real recording, then the scanner link drops."""

        def __init__(self, inner):
            self.inner, self.info, self.seekable = inner, inner.info, False

        def __iter__(self):
            for frame in self.inner:
                if frame.index == 5:
                    raise DataError("igtl://scanner:18944", "no image for 5.0 s (server disconnected)")
                yield frame

        def close(self):
            self.inner.close()

    monkeypatch.setattr(replay_module, "open_source", lambda spec, **kw: Disconnecting(real_open(spec, **kw)))
    report = replay(get_testdata_file("examples_ybr_color.dcm"), report=tmp_path / "r.json", fast=True,
                    models_dir=models_dir)
    assert report["frames"] == 5 and report["processed"] == 5
    assert "disconnected" in report["source_error"]
