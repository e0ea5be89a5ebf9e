"""Headless replay with bad input and hard stops: one-line errors before any work, outputs that
survive SIGTERM and kill -9, no file names in reports, field latency figures and the CDF plot."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from app.engine import replay as replay_module
from app.engine import replay_cli
from app.engine.replay import replay
from app.realtime import REALTIME

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[3]
ECHO = get_testdata_file("examples_ybr_color.dcm")


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    replay_cli.configure(parser)
    return replay_cli.run(parser.parse_args(argv))


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the replay gets as far as opening the source."""
    def refuse(*_a, **_k):
        raise AssertionError("the source was opened before the arguments were checked")

    monkeypatch.setattr(replay_module, "open_source", refuse)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# -- 1. arguments and outputs are checked first ------------------------------------------------------
@pytest.mark.parametrize("option, value, problem", [
    ("--report", "{tmp}/folder.json", "is a folder"),
    ("--report", "{tmp}/missing/r.json", "does not exist"),
    ("--report", "{tmp}/r.txt", "must end in .json"),
    ("--csv", "{tmp}/rows.tsv", "must end in .csv"),
    ("--csv", "{tmp}/folder.json", "is a folder"),
    ("--masks", "{tmp}/x.txt", "must end in .nii or .nii.gz"),
    ("--masks", "{tmp}/afile/m.nii.gz", "is not a folder"),
    ("--plot", "{tmp}/cdf.jpg", "must end in .png"),
])
def test_bad_output_paths_exit_2_with_one_line_before_any_work(option, value, problem, no_work, models_dir,
                                                               tmp_path, capsys):
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "afile").write_text("x")
    path = value.format(tmp=tmp_path)
    argv = [ECHO, "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir), option, path]
    assert cli(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert path in line and problem in line
    assert not (tmp_path / "r.json").exists()


def test_unwritable_folder_exit_2(no_work, models_dir, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root writes anywhere: make the check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    try:
        assert cli([ECHO, "--report", str(locked / "r.json"), "--models-dir", str(models_dir)]) == 2
    finally:
        locked.chmod(0o700)
    line = _one_error_line(capsys.readouterr().err)
    assert "is not writable" in line and str(locked) in line


def test_output_may_not_overwrite_the_source(no_work, models_dir, tmp_path, capsys):
    source = tmp_path / "cine.nii.gz"
    source.write_bytes(b"\x1f\x8b not really")
    assert cli([str(source), "--report", str(tmp_path / "r.json"), "--masks", str(source),
                "--models-dir", str(models_dir)]) == 2
    assert "name the same file" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv, problem", [
    (["", "--max-frames", "3"], "SOURCE is empty"),
    (["   "], "SOURCE is empty"),
    ([ECHO, "--max-frames", "0"], "--max-frames"),
    ([ECHO, "--max-frames", "-4"], "--max-frames"),
    ([ECHO, "--deadline-ms", "-1"], "--deadline-ms"),
    ([ECHO, "--name", " "], "--name"),
])
def test_bad_arguments_exit_2(argv, problem, no_work, models_dir, tmp_path, capsys):
    assert cli([*argv, "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir)]) == 2
    assert problem in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.json").exists()
    assert not list(tmp_path.iterdir())


def test_library_call_checks_too(no_work, models_dir, tmp_path):
    with pytest.raises(replay_module.ReplayArgumentError, match="max-frames"):
        replay(ECHO, report=tmp_path / "r.json", models_dir=models_dir, max_frames=0)
    with pytest.raises(replay_module.OutputError, match="does not exist"):
        replay(ECHO, report=tmp_path / "no" / "r.json", models_dir=models_dir)


# -- 2. the model's role and modality -----------------------------------------------------------------
def test_qc_model_as_segmentation_model_exit_2_naming_the_seg_model(no_work, models_dir, tmp_path, capsys):
    assert cli([ECHO, "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir),
                "--model", "tiny-echo-qc"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "tiny-echo-qc" in line and "QC model" in line and "use tiny-echo-seg" in line


def test_echo_model_on_cine_source_exit_2_unless_forced(models_dir, tmp_path, capsys):
    argv = ["phantom:cine?frames=4", "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir),
            "--model", "tiny-echo-seg", "--fast", "--max-frames", "2"]
    assert cli(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "echo model but the source is cine" in line and "tiny-cine-seg" in line
    assert not (tmp_path / "r.json").exists()
    assert cli([*argv, "--force"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["models"]["seg"] == "tiny-echo-seg"


# -- 3. outputs that survive SIGTERM, SIGINT and kill -9 ----------------------------------------------
def _start(tmp_path: Path, models_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "app", "replay", "phantom:echo?frames=12", "--report", str(tmp_path / "r.json"),
         "--csv", str(tmp_path / "r.csv"), "--masks", str(tmp_path / "m.nii.gz"), "--models-dir", str(models_dir),
         *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_frames(proc: subprocess.Popen, report: Path, n: int, timeout: float = 90.0) -> dict:
    """Poll the periodic report until it covers ``n`` processed frames (the replay still running)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        if report.exists():
            partial = json.loads(report.read_text())  # atomic: always whole
            if partial["processed"] >= n:
                return partial
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no report with {n} frames after {timeout} s")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_replay_and_writes_everything(sig, code, models_dir, tmp_path):
    proc = _start(tmp_path, models_dir)
    partial = _wait_for_frames(proc, tmp_path / "r.json", 5)
    assert partial["complete"] is False
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["complete"] is True and report["interrupted"] is True
    assert report["interrupted_by"] == sig.name
    rows = _rows(tmp_path / "r.csv")
    assert len(rows) == report["processed"] >= 5
    assert [int(r["index"]) for r in rows] == sorted(int(r["index"]) for r in rows)
    import nibabel as nib

    masks = nib.load(str(tmp_path / "m.nii.gz"))
    assert masks.shape[2] >= report["processed"]
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob(".*tmp*"))
    assert f"stopped  by {sig.name}" in out


def test_kill_9_leaves_csv_rows_a_partial_report_and_recoverable_masks(models_dir, tmp_path):
    from app.engine.replay_output import read_partial_masks, recover_masks

    proc = _start(tmp_path, models_dir)
    _wait_for_frames(proc, tmp_path / "r.json", 5)
    time.sleep(1.5)  # at least one more periodic report
    proc.kill()
    proc.communicate(timeout=30)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["complete"] is False and report["processed"] >= 5
    rows = _rows(tmp_path / "r.csv")
    assert len(rows) >= report["processed"]  # every frame the last report counted has its row
    assert all(r["latency_ms"] for r in rows)
    masks, meta = read_partial_masks(tmp_path / "m.nii.gz")
    assert len(masks) >= report["processed"] and meta["rows"] > 0
    out = recover_masks(tmp_path / "m.nii.gz")
    import nibabel as nib

    assert nib.load(str(out)).shape[2] >= report["processed"]
    assert not list(tmp_path.glob("*.partial*"))


def test_report_is_rewritten_atomically(tmp_path):
    from app.engine.replay_output import write_json_atomic

    target = tmp_path / "r.json"
    for n in range(3):
        write_json_atomic(target, {"n": n})
    assert json.loads(target.read_text()) == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_cut_off_mask_record_is_ignored(tmp_path):
    from app.engine.replay_output import MaskStream, read_partial_masks

    stream = MaskStream(tmp_path / "m.nii", spacing_mm=(0.5, 0.5), frame_rate=25.0)
    for i in range(3):
        stream.add(i, np.full((4, 5), i % 2, np.uint8))
    stream.close()
    with open(stream.raw_path, "ab") as fh:
        fh.write(b"\x03\x00\x00\x00\x01")  # a kill in the middle of frame 3
    masks, meta = read_partial_masks(tmp_path / "m.nii")
    assert sorted(masks) == [0, 1, 2] and masks[1].sum() == 20 and meta["frame_rate"] == 25.0


# -- 4. no file name in the report --------------------------------------------------------------------
def test_source_name_is_kind_and_hash_or_the_users_label(models_dir, tmp_path, monkeypatch):
    from app.data.case import DataError
    from app.engine.sources import open_source as real_open

    named = tmp_path / "Smith_John_1970" / "Smith_John.dcm"
    named.parent.mkdir()
    shutil.copy(ECHO, named)

    class Disconnecting:
        def __init__(self, inner):
            self.inner, self.info, self.seekable = inner, inner.info, False

        def __iter__(self):
            for frame in self.inner:
                if frame.index == 3:
                    raise DataError(named, "frame 3 is truncated")
                yield frame

        def close(self):
            self.inner.close()

    monkeypatch.setattr(replay_module, "open_source", lambda spec, **kw: Disconnecting(real_open(spec, **kw)))
    report = replay(str(named), report=tmp_path / "r.json", fast=True, models_dir=models_dir,
                    csv_out=tmp_path / "r.csv")
    text = (tmp_path / "r.json").read_text() + (tmp_path / "r.csv").read_text()
    assert "Smith" not in text and "John" not in text
    expected = replay_module.source_id(str(named))
    assert report["source"]["name"] == f"dicom-{expected}" and report["source"]["kind"] == "dicom"
    assert len(expected) == 12 and "truncated" in report["source_error"]
    other = replay(str(named), report=tmp_path / "r2.json", fast=True, models_dir=models_dir, name="case 7",
                   max_frames=2)
    assert other["source"]["name"] == "case 7"


# -- 5. --force reaches open_source when it takes it --------------------------------------------------
def test_force_is_passed_to_open_source_only_when_it_has_the_parameter(models_dir, tmp_path, monkeypatch):
    from app.engine.sources import open_source as real_open

    seen = []

    def with_force(spec, *, slice=None, force: bool = False):
        seen.append(force)
        return real_open(spec)

    monkeypatch.setattr(replay_module, "open_source", with_force)
    argv = [ECHO, "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir), "--fast",
            "--max-frames", "2"]
    assert cli([*argv, "--force"]) == 0 and cli(argv) == 0
    assert seen == [True, False]

    kwargs = []
    monkeypatch.setattr(replay_module, "open_source", lambda spec, **kw: kwargs.append(kw) or real_open(spec))
    assert cli([*argv, "--force"]) == 0 and kwargs == [{}]


# -- 6. exit status of a source that ends early -------------------------------------------------------
def test_source_failing_part_way_exits_1(models_dir, tmp_path, monkeypatch, capsys):
    from app.data.case import DataError

    class Broken:
        def __init__(self, inner):
            self.inner, self.info, self.seekable = inner, inner.info, False

        def __iter__(self):
            yield from (f for f in self.inner if f.index < 2)
            raise DataError("igtl://scanner:18944", "server disconnected")

        def close(self):
            self.inner.close()

    from app.engine.sources import open_source as real_open

    monkeypatch.setattr(replay_module, "open_source", lambda spec, **kw: Broken(real_open(spec, **kw)))
    assert cli([ECHO, "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir), "--fast"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["complete"] is True and report["processed"] == 2 and "interrupted" not in report



def _cut_files(tmp_path: Path) -> dict[str, tuple[Path, int]]:
    """A DICOM and an AVI cut part-way, with the number of frames that remain readable."""
    import cv2

    from app.engine.sources import open_source

    dicom = tmp_path / "cut.dcm"
    data = Path(ECHO).read_bytes()  # US, JPEG baseline, 30 frames
    dicom.write_bytes(data[: len(data) // 2])
    whole = tmp_path / "whole.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    video = tmp_path / "cut.avi"
    video.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = {}
    for kind, path in (("dicom", dicom), ("video", video)):
        with open_source(str(path)) as source:
            out[kind] = (path, sum(1 for _ in _until_partial(source)))
    return out


def _until_partial(source):
    from app.engine.sources.base import PartialSource

    try:
        yield from source
    except PartialSource:
        return


@pytest.mark.parametrize("kind", ["dicom", "video"])
def test_truncated_file_exit_code_depends_on_whether_max_frames_reaches_the_cut(kind, models_dir, tmp_path, capsys):
    """Issue 19 fuzz finding: exit 0 is right only when the frames asked for end before the cut;
    reaching it is a source that failed part-way (exit 1), said in one warning line, not two."""
    path, readable = _cut_files(tmp_path)[kind]
    assert 5 <= readable < 30
    capsys.readouterr()
    for max_frames, code in ((readable - 2, 0), (readable, 0), (readable + 1, 1), (None, 1)):
        report = tmp_path / f"r{max_frames}.json"
        argv = [str(path), "--report", str(report), "--models-dir", str(models_dir), "--fast",
                "--echo-mode", "contrast"]  # the tiny models are a contrast pair: no note on B-mode frames
        argv += [] if max_frames is None else ["--max-frames", str(max_frames)]
        assert cli(argv) == code, (max_frames, capsys.readouterr().err)
        # one warning when the cut is reached; before it, the same warning if the source found the cut
        # when it opened (a DICOM's pixel data is measured then; a video is found cut only when read)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == (1 if code == 1 or kind == "dicom" else 0), err
        assert all(line.startswith("warning: ") and f"truncated: {readable} of 30 frames readable" in line
                   for line in err), err
        data = json.loads(report.read_text())
        assert data["processed"] == min(max_frames or readable, readable) and data["complete"] is True
        if code == 1:
            assert data["source_error"].endswith(f"truncated: {readable} of 30 frames readable")
        else:
            assert "source_error" not in data


def test_ultrasound_relabelled_mr_exits_2_with_one_line_and_writes_nothing(models_dir, tmp_path, capsys):
    import pydicom

    ds = pydicom.dcmread(ECHO)
    ds.Modality = "MR"
    path = tmp_path / "relabelled.dcm"
    ds.save_as(path)
    argv = [str(path), "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir), "--fast",
            "--max-frames", "2"]
    assert cli(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "relabelled.dcm: declares modality MR but its content is ultrasound" in line and "--force" in line
    assert not (tmp_path / "r.json").exists()
    assert cli([*argv, "--force"]) == 0  # as MR, through the cine model, with one warning
    assert json.loads((tmp_path / "r.json").read_text())["models"]["seg"] == "tiny-cine-seg"
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("warning: ") and "(--force)" in err[0], err

# -- 7. latency as the field reports it ---------------------------------------------------------------
def test_field_latency_leaves_out_warmup_and_tail_of_long_runs():
    from app.engine.stats import field_latency

    values = np.concatenate([np.full(10, 500.0), np.linspace(10, 20, 41), np.full(10, 900.0)])
    lat, head, tail = field_latency(values)
    assert (head, tail) == (10, 10)
    assert set(lat) == {"p50", "p90", "p95", "p99", "p99.9", "max"}
    assert lat["max"] == 20.0 and lat["p50"] == pytest.approx(15.0)
    assert lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    short, head, tail = field_latency(values[:40])
    assert (head, tail) == (0, 0) and short["max"] == 500.0


def test_report_uses_the_realtime_rule_and_draws_the_plot(models_dir, tmp_path, capsys):
    from PIL import Image

    from app.engine.latency_plot import DEADLINE

    argv = ["phantom:echo?frames=12", "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir),
            "--fast", "--max-frames", "45", "--plot", str(tmp_path / "cdf.png")]
    assert cli(argv) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["excluded_warmup_frames"] == 10 and report["excluded_tail_frames"] == 10
    assert report["meets_realtime"] == REALTIME.meets(report["latency_ms"]["p95"], report["fps"])
    assert "p99.9" in capsys.readouterr().out
    image = np.asarray(Image.open(tmp_path / "cdf.png").convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert np.all(image == DEADLINE, axis=-1).sum() > 100  # the 50 ms line is drawn
    assert (np.abs(image.astype(int) - (31, 94, 180)).sum(-1) < 10).sum() > 50  # the curve


def test_plot_of_no_frames_still_draws_axes(tmp_path):
    from PIL import Image

    from app.engine.latency_plot import nice_ticks, plot_latency_cdf

    plot_latency_cdf(np.array([]), tmp_path / "empty.png")
    assert Image.open(tmp_path / "empty.png").size[0] > 0
    assert nice_ticks(55.0)[-1] >= 55.0 and nice_ticks(55.0)[:2] == [0.0, 10.0]


# -- 8. library messages: one line each ---------------------------------------------------------------
def test_warnings_are_printed_once_each_on_one_line(capsys):
    handler = replay_cli._install_logging()
    try:
        log = logging.getLogger("pydicom")
        for i in range(5):
            log.warning("frame %d failed: bad\nsecond line", i)
        warnings.warn("Invalid value for VR UI", UserWarning, stacklevel=1)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("app.engine.pipeline").exception("callback failed")
    finally:
        replay_cli._remove_logging(handler)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: frame 0 failed: bad"
    assert "warning: Invalid value for VR UI" in err
    assert "error: callback failed (ValueError: boom)" in err
    assert "warning: 4 more like 'frame 0 failed: bad' not shown" in err
    assert not any("Traceback" in line or "second line" in line for line in err)


def test_a_write_failure_stops_the_replay_with_exit_1(models_dir, tmp_path, monkeypatch, capsys):
    from app.engine.replay_output import CsvRows

    def full_disk(self, record, t0_ns=None):
        raise OSError(28, "No space left on device", str(self.path))

    monkeypatch.setattr(CsvRows, "write", full_disk)
    assert cli(["phantom:echo?frames=12", "--report", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"),
                "--models-dir", str(models_dir)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert "No space left" in report["output_error"] and report["complete"] is True
