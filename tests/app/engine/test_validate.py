"""``python -m app validate``: per-case per-class Dice and HD95, QC calibration, traffic light,
latency, the HTML page, and bad input (no labels, a bad --report)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.validate import expand_sources, hd95

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def echo_folder(tmp_path_factory) -> Path:
    """Two small phantom echo DICOMs with their masks beside them (ground truth)."""
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    folder = tmp_path_factory.mktemp("echo")
    for seed in (3, 4):
        write_echo_dicom(render_echo_case(seed, 0, n_frames=6, size=64), folder / f"Doe^Jane_{seed}.dcm", 1)
    return folder


def test_hd95_of_shifted_squares_is_the_shift():
    a = np.zeros((40, 40), bool)
    a[10:20, 10:20] = True
    b = np.roll(a, 3, axis=1)
    px, mm = hd95(a, b, (0.5, 0.5))
    assert px == pytest.approx(3.0, abs=0.01) and mm == pytest.approx(1.5, abs=0.01)
    assert hd95(a, a)[0] == 0.0 and np.isnan(hd95(a, np.zeros_like(a))[0])
    px_aniso, mm_aniso = hd95(a, b, (1.0, 2.0))  # the shift is along columns: 3 px x 2 mm
    assert px_aniso == pytest.approx(3.0, abs=0.01) and mm_aniso == pytest.approx(6.0, abs=0.01)


def test_validate_two_cases_report_and_html(echo_folder, models_dir, tmp_path, capsys):
    assert len(expand_sources([str(echo_folder)])) == 2  # the masks are not recordings
    report, page = tmp_path / "v.json", tmp_path / "v.html"
    code = main(["validate", str(echo_folder), "--report", str(report), "--html", str(page), "--fast",
                 "--max-frames", "5", "--models-dir", str(models_dir)])
    assert code == 0, capsys.readouterr().err
    out = json.loads(report.read_text())
    assert len(out["cases"]) == 2 and out["complete"] is True and out["mode"] == "fast"
    for case in out["cases"]:
        assert case["name"].startswith("dicom-") and case["labelled_frames"] == 5
        assert case["classes"], "no per-class scores"
        for scores in case["classes"].values():
            assert 0.0 <= scores["dice"] <= 1.0 and scores["frames_scored"] > 0
            assert scores["hd95_px"] is None or scores["hd95_px"] >= 0.0
            assert "hd95_mm" in scores
        assert case["latency_ms"]["p50"] > 0 and case["fps"] > 0
    overall = out["overall"]
    assert overall["qc_calibration"]["n"] == 10 and 0.0 <= overall["qc_calibration"]["mae"] <= 1.0
    light = overall["traffic_light"]
    assert light["n"] == 10 and 0.0 <= light["accuracy"] <= 1.0
    assert sum(sum(row.values()) for row in light["confusion_true_vs_shown"].values()) == 10
    lat = overall["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] and overall["fps"] > 0
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3 and "<table>" in text
    # The plots are base64 PNGs, whose letters spell "Doe" by chance about one run in ten.
    prose = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    for written in (report.read_text(), prose):
        assert "Doe" not in written and "Jane" not in written and str(echo_folder) not in written


def test_a_source_without_labels_exits_2(echo_folder, models_dir, tmp_path, capsys):
    import shutil

    unlabelled = tmp_path / "nolabel.dcm"
    shutil.copy(echo_folder / "Doe^Jane_3.dcm", unlabelled)
    code = main(["validate", str(unlabelled), "--report", str(tmp_path / "r.json"), "--models-dir", str(models_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "labels" in err and "replay" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "r.json").exists()


def test_a_bad_report_path_exits_2_before_any_work(echo_folder, models_dir, tmp_path, capsys):
    for bad in (tmp_path / "missing" / "r.json", tmp_path / "r.txt"):
        code = main(["validate", str(echo_folder), "--report", str(bad), "--models-dir", str(models_dir)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error:") and bad.name in err and len(err.splitlines()) == 1
