"""``python -m app validate KIND:DIR [--part all|test]``: every ``--data`` kind through the real pipeline.

Tiny datasets are written in each dataset's exact layout by ``python -m app phantom --format ...``
(CAMUS 2023 and 2019, EchoNet-Dynamic, DICOM + mask, ACDC) and by the project's writers (a DICOM
SEG, NIfTI ``_gt`` pairs); tiny ONNX models score them. The tests check that each case is replayed
with its ground truth and the dataset's label map (classes matched by name), that ``--part test``
is the dataset's official test part (the same cases the search holds out), that a dataset without
one stops in one line, that EchoNet is scored on its traced frames only, and that reports name
cases by kind and hash, never by file name or patient.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.data.data_spec import case_list_sha256
from app.data.dataset_index import anonymous_id
from tests.app.engine.tiny_models import write_cine_model, write_echo_models

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A contrast echo pair (myocardium), a B-mode echo pair (LV, MYO, LA) and a cine clip model (ACDC)."""
    folder = tmp_path_factory.mktemp("models")
    write_echo_models(folder)
    write_echo_models(folder, seg_id="tiny-bmode-seg", qc_id="tiny-bmode-qc", echo_mode="bmode")
    write_cine_model(folder)
    return folder


def _phantom(out: Path, fmt: str, cases: int, *extra: str, modality: str = "echo") -> Path:
    args = ["phantom", "--modality", modality, "--format", fmt, "--cases", str(cases), "--out", str(out),
            "--seed", "5", "--frames", "6" if modality == "echo" else "4", *extra]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def camus(tmp_path_factory) -> Path:
    """CAMUS 2023: ``database_nifti/`` and ``database_split/`` (patient0003 is the official test set)."""
    root = tmp_path_factory.mktemp("CAMUS_public")
    _phantom(root / "database_nifti", "camus", 3, "--size", "48")
    split = root / "database_split"
    split.mkdir()
    (split / "subgroup_training.txt").write_text("patient0001\n")
    (split / "subgroup_validation.txt").write_text("patient0002\n")
    (split / "subgroup_testing.txt").write_text("patient0003\n")
    return root


@pytest.fixture(scope="module")
def echonet(tmp_path_factory) -> Path:
    """EchoNet-Dynamic with the second video in the TEST split."""
    root = _phantom(tmp_path_factory.mktemp("EchoNet") / "EchoNet-Dynamic", "echonet", 2, "--size", "48")
    lines = (root / "FileList.csv").read_text().splitlines()
    rows = [",".join(line.split(",")[:-1] + [split]) for line, split in zip(lines[1:], ("TRAIN", "TEST"))]
    (root / "FileList.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    return root


def _validate(tmp_path: Path, models: Path, *sources: str, name: str = "v.json", extra: tuple = ()) -> tuple[int, dict]:
    report = tmp_path / name
    code = main(["validate", *sources, "--report", str(report), "--fast", "--models-dir", str(models), *extra])
    return code, json.loads(report.read_text()) if report.exists() else {}


def _no_names(report: dict, *folders: Path) -> None:
    text = json.dumps(report)
    assert not re.search(r"patient\d|0X[0-9A-F]{16}|echo_\d{4}|scan\d", text), "a file or patient name in the report"
    for folder in folders:
        assert str(folder) not in text


# ----------------------------------------------------------------------------------------------- CAMUS
def test_camus_test_part_is_the_official_test_set_scored_by_class_name(camus, models, tmp_path, capsys):
    code, out = _validate(tmp_path, models, f"camus:{camus}", extra=("--part", "test"))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    (case,) = out["cases"]
    test_id = anonymous_id("camus", "patient0003_4CH")
    assert case["name"] == test_id and case["kind"] == "camus" and case["modality"] == "echo"
    assert out["data"] == [{"source": "camus", "dataset": "CAMUS", "part": "test",
                            "official_split": "CAMUS database_split/subgroup_*.txt", "cases": 1,
                            "case_list_sha256": case_list_sha256([test_id]), "unlabelled_left_out": 0}]
    # a CAMUS case is B-mode: the B-mode pair runs, its classes matched to CAMUS 1 LV, 2 MYO, 3 LA by name
    assert case["models"]["seg"] == "tiny-bmode-seg" and case["echo_mode"]["mode"] == "bmode"
    assert {n: (k["label"], k["ground_truth_label"]) for n, k in case["classes"].items()} == {
        "lv": (1, 1), "myocardium": (2, 2), "la": (3, 3)}
    assert case["labelled_frames"] == case["frames"] > 0 and case["spacing_mm"] is not None
    assert all(0.0 <= k["dice"] <= 1.0 and k["frames_scored"] == case["frames"] for k in case["classes"].values())
    assert "part test: 1 labelled case (official split" in printed.out
    _no_names(out, camus)


def test_camus_all_parts_and_a_myocardium_model_scores_against_label_2(camus, models, tmp_path):
    code, out = _validate(tmp_path, models, f"camus:{camus}", extra=("--model", "tiny-echo-seg", "--max-frames", "3"))
    assert code == 0 and out["data"][0]["part"] == "all" and out["data"][0]["cases"] == 3
    assert sorted(c["name"] for c in out["cases"]) == sorted(anonymous_id("camus", f"patient{i:04d}_4CH")
                                                               for i in (1, 2, 3))
    for case in out["cases"]:
        assert list(case["classes"]) == ["myocardium"] and case["classes"]["myocardium"]["ground_truth_label"] == 2
        assert case["labelled_frames"] == 3


def test_camus_2019_has_no_labelled_test_part(tmp_path, models, capsys):
    root = _phantom(tmp_path / "CAMUS", "camus2019", 10, "--size", "40", "--frames", "4")
    assert (root / "testing" / "patient0010").is_dir()
    report = tmp_path / "r.json"
    code = main(["validate", f"camus:{root}", "--part", "test", "--report", str(report), "--models-dir", str(models)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: SOURCE camus:")
    assert "2019" in err and "no labelled case" in err and "--part all" in err and not report.exists()


# --------------------------------------------------------------------------------------------- EchoNet
def test_echonet_scores_lv_on_the_traced_frames_only(echonet, models, tmp_path, capsys):
    import csv

    with open(echonet / "FileList.csv", newline="") as fh:
        test_name = next(r["FileName"] for r in csv.DictReader(fh) if r["Split"] == "TEST")
    code, out = _validate(tmp_path, models, f"echonet:{echonet}", extra=("--part", "test", "--html",
                                                                         str(tmp_path / "v.html")))
    assert code == 0, capsys.readouterr().err
    (case,) = out["cases"]
    assert case["name"] == anonymous_id("echonet", test_name) and case["kind"] == "echonet"
    assert case["frames"] == 6 and case["labelled_frames"] == 2  # ED and ES: the traced frames
    assert list(case["classes"]) == ["lv"] and case["classes"]["lv"]["frames_scored"] == 2
    assert case["classes"]["lv"]["ground_truth_label"] == 1 and case["classes_not_scored"] == ["myocardium", "la"]
    assert case["spacing_mm"] is None and case["classes"]["lv"]["hd95_mm"] is None  # EchoNet gives no spacing
    assert out["overall"]["qc_calibration"]["n"] == 2 and out["overall"]["latency_frames"] > 2  # all run, 2 scored
    _no_names(out, echonet)
    assert test_name not in (tmp_path / "v.html").read_text()


# ------------------------------------------------------------------------------------------------ ACDC
def test_acdc_test_part_is_testing(tmp_path, models, capsys):
    root = tmp_path / "ACDC"
    _phantom(root, "acdc", 3, "--slices", "2", modality="cine")  # the writer puts patient003 in testing/
    code, out = _validate(tmp_path, models, f"acdc:{root}", extra=("--part", "test"))
    assert code == 0, capsys.readouterr().err
    (case,) = out["cases"]
    assert case["name"] == anonymous_id("acdc", "patient003") and case["modality"] == "cine"
    assert out["data"][0]["official_split"] == "ACDC training/ and testing/ folders"
    assert {n: (k["label"], k["ground_truth_label"]) for n, k in case["classes"].items()} == {
        "RV": (1, 1), "MYO": (2, 2), "LV": (3, 3)}
    assert case["labelled_frames"] > 0 and case["models"]["seg"] == "tiny-cine-seg"
    _no_names(out, root)


# ---------------------------------------------------------------------------------------- DICOM, NIfTI
@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory) -> Path:
    """Two phantom DICOMs: one with its ``_mask.npz``, one with a DICOM SEG beside it instead."""
    from app.data.loaders.dicom import load_dicom
    from app.data.writers.dicom_seg import write_dicom_seg

    root = _phantom(tmp_path_factory.mktemp("dicom") / "scans", "dicom", 2, "--size", "48")
    truth = load_dicom(root / "echo_0001.dcm")
    (root / "echo_0001_mask.npz").unlink()
    write_dicom_seg(truth.labels, truth.label_map, truth.labelled_frames, root / "echo_0001.dcm",
                    root / "echo_0001_seg.dcm")
    return root


def test_dicom_folder_uses_masks_and_dicom_seg_as_ground_truth(dicom_folder, models, tmp_path, capsys):
    code, out = _validate(tmp_path, models, f"dicom:{dicom_folder}", extra=("--max-frames", "4"))
    assert code == 0, capsys.readouterr().err
    assert out["data"][0]["official_split"] is None and out["data"][0]["cases"] == 2
    names = {anonymous_id("dicom", f"echo_{i:04d}.dcm") for i in (0, 1)}
    assert {c["name"] for c in out["cases"]} == names  # the SEG file is labels, not a third recording
    for case in out["cases"]:
        assert case["kind"] == "dicom" and case["labelled_frames"] == 4
        assert "myocardium" in case["classes"] and case["classes"]["myocardium"]["frames_scored"] == 4
    _no_names(out, dicom_folder)


@pytest.mark.parametrize("kind", ["dicom", "nifti"])
def test_folders_without_an_official_split_refuse_part_test_in_one_line(kind, dicom_folder, nifti_folder, models,
                                                                        tmp_path, capsys):
    folder = dicom_folder if kind == "dicom" else nifti_folder
    report = tmp_path / "r.json"
    code = main(["validate", f"{kind}:{folder}", "--part", "test", "--report", str(report), "--models-dir",
                 str(models)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no official test part" in err
    assert "--part all" in err and "folder of their own" in err and not report.exists()


@pytest.fixture(scope="module")
def nifti_folder(tmp_path_factory) -> Path:
    """Two 2D+t B-mode echo NIfTI pairs (``scanN.nii.gz`` + ``scanN_gt.nii.gz``, CAMUS labels)."""
    from app.data.loaders.nifti import write_nifti
    from app.data.phantom.echo import render_echo_case

    root = tmp_path_factory.mktemp("nifti") / "pairs"
    root.mkdir()
    for i in range(2):
        case = render_echo_case(6, i, n_frames=4, size=40, variant="bmode")
        grey = case.frames.mean(axis=-1).astype(np.uint8)
        write_nifti(root / f"scan{i}.nii.gz", np.transpose(grey, (2, 1, 0)), (0.3, 0.3, 1.0))
        write_nifti(root / f"scan{i}_gt.nii.gz", np.transpose(case.labels, (2, 1, 0)), (0.3, 0.3, 1.0))
    return root


def test_nifti_pairs_are_2d_t_echo_with_camus_labels(nifti_folder, models, tmp_path, capsys):
    code, out = _validate(tmp_path, models, f"nifti:{nifti_folder}", extra=("--echo-mode", "bmode"))
    assert code == 0, capsys.readouterr().err
    assert len(out["cases"]) == 2
    for case in out["cases"]:
        assert case["kind"] == "nifti" and case["modality"] == "echo" and case["labelled_frames"] == 4
        assert {n: k["ground_truth_label"] for n, k in case["classes"].items()} == {"lv": 1, "myocardium": 2, "la": 3}
    _no_names(out, nifti_folder)


def test_a_case_that_cannot_be_read_is_reported_and_the_others_run(nifti_folder, models, tmp_path, capsys):
    broken = tmp_path / "pairs"
    shutil.copytree(nifti_folder, broken)
    (broken / "scan0_gt.nii.gz").write_bytes(b"not a nifti")
    code, out = _validate(tmp_path, models, f"nifti:{broken}", extra=("--echo-mode", "bmode"))
    printed = capsys.readouterr()
    assert code == 1 and out["complete"] is True  # every case was tried; one failed
    failed = [c for c in out["cases"] if c.get("source_error")]
    assert len(failed) == 1 and failed[0]["name"] == anonymous_id("nifti", "scan0.nii.gz")
    assert failed[0]["processed"] == 0 and failed[0]["classes"] == {}
    assert [c["labelled_frames"] for c in out["cases"] if not c.get("source_error")] == [4]
    _no_names(out, broken)
    assert "could not be read" in printed.out


# ------------------------------------------------------------------------------------------- bad input
def test_bad_specs_and_part_test_on_recordings_exit_2_in_one_line(dicom_folder, models, tmp_path, capsys):
    report = tmp_path / "r.json"
    for args, words in (
        ([f"camus:{tmp_path / 'missing'}"], "does not exist"),
        ([f"acdc:{tmp_path}"], "no labelled ACDC cases found"),
        ([str(dicom_folder / "echo_0000.dcm"), "--part", "test"], "give the dataset as KIND:DIR"),
        ([str(dicom_folder)], "a DICOM SEG: dicom:DIR"),  # as a plain folder the SEG is not read: say how it is
    ):
        code = main(["validate", *args, "--report", str(report), "--models-dir", str(models)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and words in err, err
        assert not report.exists()
