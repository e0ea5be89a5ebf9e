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


# -- classes matched by name, not by number ---------------------------------------------------------
@pytest.fixture(scope="module")
def bmode_dicom(tmp_path_factory) -> Path:
    """A B-mode phantom DICOM labelled as CAMUS (1 LV, 2 MYO, 3 LA) with its mask beside it."""
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    path = tmp_path_factory.mktemp("bmode") / "a4c.dcm"
    return write_echo_dicom(render_echo_case(5, 0, n_frames=4, size=64, variant="bmode"), path, 1)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_a_myocardium_only_model_on_camus_labels_scores_myo_against_label_2(bmode_dicom, models_dir, tmp_path):
    """The contrast pair (1 = myocardium) on a CAMUS-labelled recording: myocardium is scored against
    CAMUS 2 MYO (not 1 LV), in the pipeline's true Dice, replay's report and validate's per-class Dice."""
    from app.engine.replay import replay
    from app.validate import validate

    results = []
    rep = replay(str(bmode_dicom), report=tmp_path / "r.json", fast=True, models_dir=models_dir,
                 on_result=results.append, echo_mode="bmode")
    assert rep["models"]["seg"] == "tiny-echo-seg"  # no B-mode pair here: the contrast pair runs
    assert len(results) == 4 and set(np.unique(results[0].frame.ground_truth)) == {0, 1, 2, 3}  # CAMUS labels
    expected = {}
    for r in results:
        pred = r.mask == 1
        assert pred.any() and (pred != (r.frame.ground_truth == 1)).any()  # LV and MYO differ: the test can tell
        expected[r.frame.index] = _dice(pred, r.frame.ground_truth == 2)
        assert r.true_dice == pytest.approx(expected[r.frame.index], abs=1e-9)
        assert r.true_dice != pytest.approx(_dice(pred, r.frame.ground_truth == 1), abs=1e-6)
    out = validate([str(bmode_dicom)], report=tmp_path / "v.json", models_dir=models_dir, fast=True,
                   echo_mode="bmode")
    (case,) = out["cases"]
    assert list(case["classes"]) == ["myocardium"] and "classes_not_scored" not in out
    myo = case["classes"]["myocardium"]
    assert myo["dice"] == pytest.approx(float(np.mean(list(expected.values()))), abs=1e-3)
    assert case["dice_mean"] == pytest.approx(myo["dice"], abs=1e-3)
    assert (myo["label"], myo["ground_truth_label"]) == (1, 2)
    assert rep["classes_scored"] == {"myocardium": {"label": 1, "ground_truth_label": 2}}


def test_classes_the_ground_truth_lacks_are_not_scored_not_dice_0(echo_folder, tmp_path, capsys):
    """A B-mode pair (LV, MYO, LA) on a myocardium-only recording: only MYO is scored (against label 1);
    LV and LA are listed once as not scored, with the reason, and appear in no Dice."""
    from tests.app.engine.tiny_models import write_echo_models

    models = tmp_path / "models"
    write_echo_models(models, seg_id="tiny-bmode-seg", qc_id="tiny-bmode-qc", echo_mode="bmode")
    report = tmp_path / "v.json"
    code = main(["validate", str(echo_folder), "--report", str(report), "--fast", "--max-frames", "3",
                 "--models-dir", str(models), "--model", "tiny-bmode-seg"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    out = json.loads(report.read_text())
    for case in out["cases"]:
        assert list(case["classes"]) == ["myocardium"] and case["classes_not_scored"] == ["lv", "la"]
        assert (case["classes"]["myocardium"]["label"], case["classes"]["myocardium"]["ground_truth_label"]) == (2, 1)
    assert out["classes_not_scored"]["classes"] == ["lv", "la"]
    assert len(out["classes_not_scored"]["cases"]) == 2 and "not counted as Dice 0" in out["classes_not_scored"]["reason"]
    assert "not scored: lv, la" in printed.out


def test_a_camus_patient_folder_is_one_recording_and_its_dataset_folder_expands(tmp_path):
    """A CAMUS patient folder (``Info_4CH.cfg``, ``*_4CH_*.nii.gz``) is one labelled case, not its NIfTI files."""
    root = tmp_path / "camus"
    for name in ("patient0001", "patient0002"):
        (root / name).mkdir(parents=True)
        (root / name / "Info_4CH.cfg").write_text("ED: 1\nES: 2\n")
        (root / name / f"{name}_4CH_ED.nii.gz").write_bytes(b"")
    patients = [str(root / "patient0001"), str(root / "patient0002")]
    assert expand_sources([patients[0]]) == [patients[0]]
    assert expand_sources([str(root)]) == patients
