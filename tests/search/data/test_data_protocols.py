"""Dataset folders in their exact layouts -> the methods' patient splits and label maps.

Tiny phantom datasets are written with the project's format writers (CAMUS 2023 and 2019, ACDC,
EchoNet-Dynamic, DICOM + mask / SEG, NIfTI pairs); the tests check that splits are by patient,
deterministic and respect the official splits, that labels are renumbered to the method's map,
that a dataset that cannot give a method's classes stops with one clear error, and that the card's
``data`` field carries no case id.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.data.case import DataError
from app.data.phantom_cli import write_phantom_dataset
from search.data import (CINE_ACDC, ECHO_MYOCARDIUM, Need, anonymous_id, check_need, cine_parts, members_of_cases,
                         members_of_refs, open_dataset, parse_data_spec, protocol_cases, segqc_parts,
                         split_by_patient)

SEGQC_COUNTS = {"n_s1": 2, "n_s2": 2, "n_test": 2, "n_qc_val": 1}
LV_ONLY = Need("echo", {0: "background", 1: "LV"}, 1, "echo frames with an LV label")


def _camus(root: Path, n: int, fmt: str = "camus") -> Path:
    write_phantom_dataset("echo", n, root, seed=5, n_frames=8, size=48, fmt=fmt)
    return root


@pytest.fixture(scope="module")
def camus2023(tmp_path_factory) -> Path:
    """CAMUS 2023 layout: ``database_nifti/`` + ``database_split/`` (patients 7 and 8 official test)."""
    root = tmp_path_factory.mktemp("CAMUS_public")
    _camus(root / "database_nifti", 8)
    split = root / "database_split"
    split.mkdir()
    (split / "subgroup_training.txt").write_text("\n".join(f"patient{i:04d}" for i in range(1, 6)) + "\n")
    (split / "subgroup_validation.txt").write_text("patient0006\n")
    (split / "subgroup_testing.txt").write_text("patient0007\npatient0008\n")
    return root


@pytest.fixture(scope="module")
def acdc(tmp_path_factory) -> Path:
    """ACDC layout: 5 patients in ``training/``, 2 in ``testing/``."""
    from app.data.phantom.cine import render_cine_case
    from app.data.writers.acdc import write_acdc_patient

    root = tmp_path_factory.mktemp("ACDC")
    for i in range(7):
        case = render_cine_case(2, i, n_frames=4, n_slices=2, shape=(48, 40))
        write_acdc_patient(case, root / ("training" if i < 5 else "testing"), i + 1)
    return root


@pytest.fixture(scope="module")
def echonet(tmp_path_factory) -> Path:
    """EchoNet layout with the Split column set: two TEST videos, one VAL, the rest TRAIN."""
    root = tmp_path_factory.mktemp("EchoNet")
    write_phantom_dataset("echo", 6, root, seed=4, n_frames=6, size=48, fmt="echonet")
    lines = (root / "FileList.csv").read_text().splitlines()
    splits = ["TRAIN", "TRAIN", "TRAIN", "VAL", "TEST", "TEST"]
    rows = [",".join(line.split(",")[:-1] + [s]) for line, s in zip(lines[1:], splits)]
    (root / "FileList.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    return root


def _ids(parts: dict) -> dict[str, list[str]]:
    return {k: sorted(c.case_id if hasattr(c, "case_id") else c for c in v) for k, v in parts.items()}


def _assert_disjoint(parts: dict[str, list[str]]) -> None:
    seen = [i for ids in parts.values() for i in ids]
    assert len(seen) == len(set(seen)), "a case is in two parts"


# --------------------------------------------------------------------------------------------- CAMUS
def test_camus_segqc_protocol_respects_the_official_test_set(camus2023: Path) -> None:
    spec = parse_data_spec(f"camus:{camus2023}")
    index = open_dataset(spec)
    assert len(index.refs) == 8 and index.modalities == {"echo"} and "database_split" in index.official
    parts = protocol_cases(index, ECHO_MYOCARDIUM, "segqc-hw",
                           lambda m: segqc_parts(m, **SEGQC_COUNTS, seed=0, where=spec.root))
    ids = _ids(parts)
    _assert_disjoint(ids)
    assert ids["test"] == sorted(anonymous_id("camus", f"patient{i:04d}_4CH") for i in (7, 8))
    assert sum(len(v) for v in ids.values()) == 8 and all(ids[k] for k in ids)
    again = protocol_cases(open_dataset(spec), ECHO_MYOCARDIUM, "segqc-hw",
                           lambda m: segqc_parts(m, **SEGQC_COUNTS, seed=0, where=spec.root))
    assert _ids(again) == ids  # deterministic for a seed


def test_camus_myocardium_is_label_2_renumbered_to_1(camus2023: Path) -> None:
    from app.data.loaders.camus import load_camus_patient

    index = open_dataset(parse_data_spec(f"camus:{camus2023}"))
    parts = protocol_cases(index, ECHO_MYOCARDIUM, "segqc-hw",
                           lambda m: segqc_parts(m, **SEGQC_COUNTS, seed=0))
    case = parts["test"][0]
    raw = next(load_camus_patient(camus2023 / "database_nifti" / f"patient{i:04d}", "4CH") for i in (7, 8)
               if anonymous_id("camus", f"patient{i:04d}_4CH") == case.case_id)
    assert case.label_map == {0: "background", 1: "myocardium"}
    np.testing.assert_array_equal(case.labels, (raw.labels == 2).astype(np.uint8))  # 1 LV and 3 LA -> background
    assert case.labels.any() and "patient" not in case.case_id


def test_camus_without_split_files_is_split_by_seed(tmp_path: Path) -> None:
    import shutil

    root = _camus(tmp_path / "camus", 6)
    shutil.rmtree(root / "database_split")  # the writer ships the official split; a folder without one
    index = open_dataset(parse_data_spec(f"camus:{root}"))
    assert index.official is None and all(r.official is None for r in index.refs)
    members = members_of_refs(index.refs)
    a = segqc_parts(members, **SEGQC_COUNTS, seed=0)
    assert a == segqc_parts(list(reversed(members)), **SEGQC_COUNTS, seed=0)
    _assert_disjoint(a)
    assert sorted(i for v in a.values() for i in v) == sorted(r.case_id for r in index.refs)
    seeds = {tuple(segqc_parts(members, **SEGQC_COUNTS, seed=s)["test"]) for s in range(6)}
    assert len(seeds) > 1  # the seed moves the split


def test_camus_2019_release_leaves_out_its_unlabelled_test_set(tmp_path: Path) -> None:
    root = _camus(tmp_path / "CAMUS", 10, fmt="camus2019")
    assert (root / "testing" / "patient0010").is_dir() and (root / "training" / "patient0009").is_dir()
    index = open_dataset(parse_data_spec(f"camus:{root}"))
    assert len(index.refs) == 9 and index.unlabelled == 1 and "2019" in index.official
    assert all(r.official == "train" for r in index.refs)
    parts = protocol_cases(index, ECHO_MYOCARDIUM, "segqc-hw", lambda m: segqc_parts(m, **SEGQC_COUNTS, seed=0))
    assert sum(len(v) for v in parts.values()) == 9
    assert {c.frames.ndim for v in parts.values() for c in v} == {3} and all(
        set(np.unique(c.labels)) <= {0, 1} for v in parts.values() for c in v)


# ---------------------------------------------------------------------------------------------- ACDC
def test_acdc_cine_split_uses_testing_as_test(acdc: Path) -> None:
    from search.train.cine_config import DataConfig
    from search.train.clips import PatientSplit, load_cases

    spec = parse_data_spec(f"acdc:{acdc}")
    cfg = DataConfig(n_patients=5, n_test=1, clip_length=4, height=32, width=32, render_shape=(32, 32),
                     source=spec.text)
    cases = load_cases(cfg)
    assert len(cases) == 7 and {c.frames.shape[-2:] for c in cases} == {(32, 32)}
    assert all(c.label_map[1] == "RV" and c.label_map[3] == "LV" for c in cases)
    split = PatientSplit.for_cases(cases, cfg)
    testing = sorted(anonymous_id("acdc", f"patient{i:03d}") for i in (6, 7))
    assert sorted(split.test) == testing and len(split.weight) + len(split.arch) == 5
    assert split == PatientSplit.for_cases(list(reversed(cases)), cfg)
    _assert_disjoint({"test": list(split.test), "val": list(split.val), "w": list(split.weight),
                      "a": list(split.arch)})


def test_acdc_labels_keep_their_values(acdc: Path) -> None:
    from app.data.loaders.acdc import load_acdc_patient

    index = open_dataset(parse_data_spec(f"acdc:{acdc}"))
    ref = next(r for r in index.refs if r.case_id == anonymous_id("acdc", "patient001"))
    raw = load_acdc_patient(acdc / "training" / "patient001")
    parts = protocol_cases(index, CINE_ACDC, "msnas-hw", lambda m: {"all": [ref.case_id]})
    np.testing.assert_array_equal(parts["all"][0].labels, raw.labels)
    assert set(np.unique(raw.labels)) == {0, 1, 2, 3}


def test_echo_datasets_cannot_feed_the_cine_methods(camus2023: Path, echonet: Path) -> None:
    for root, kind in ((camus2023, "camus"), (echonet, "echonet")):
        with pytest.raises(DataError, match="needs short-axis cine MR .* gives echo"):
            check_need(open_dataset(parse_data_spec(f"{kind}:{root}")), CINE_ACDC, "msnas-hw")


# ------------------------------------------------------------------------------------------- EchoNet
def test_echonet_split_column_is_the_test_part(echonet: Path) -> None:
    import csv

    with open(echonet / "FileList.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    index = open_dataset(parse_data_spec(f"echonet:{echonet}"))
    parts = split_by_patient(members_of_refs(index.refs), {"train": 0.8, "test": 0.2}, seed=0)
    assert parts["test"] == sorted(anonymous_id("echonet", r["FileName"]) for r in rows if r["Split"] == "TEST")
    assert len(parts["train"]) == 4  # TRAIN and VAL


def test_echonet_lv_tracing_maps_to_lv(echonet: Path) -> None:
    index = open_dataset(parse_data_spec(f"echonet:{echonet}"))
    parts = protocol_cases(index, LV_ONLY, "an LV method", lambda m: {"all": [m[0].case_id]})
    case = parts["all"][0]
    assert case.label_map == {0: "background", 1: "LV"} and len(case.labelled_frames) == 2
    assert all(case.labels[t].any() for t in case.labelled_frames)


def test_echonet_stops_the_myocardium_method_with_one_clear_error(echonet: Path, tmp_path: Path) -> None:
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.data import load_protocol

    spec = parse_data_spec(f"echonet:{echonet}")
    with pytest.raises(DataError) as err:
        check_need(open_dataset(spec), ECHO_MYOCARDIUM, "segqc-hw")
    message = str(err.value)
    assert message.startswith(str(echonet)) and "segqc-hw" in message and "MYO" in message and "LV" in message
    assert "\n" not in message
    cfg = replace(preset("smoke").data, source=spec.text)
    with pytest.raises(DataError, match="MYO"):
        load_protocol(cfg, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("cases_*.npz"))  # nothing trained, nothing cached


# ---------------------------------------------------------------------------------- DICOM and NIfTI
def test_dicom_files_of_one_patient_stay_together_and_seg_labels_read(tmp_path: Path) -> None:
    from app.data.loaders.dicom import load_dicom
    from app.data.phantom.echo import render_echo_case
    from app.data.writers.dicom_seg import write_dicom_seg
    from app.data.writers.dicom_us import write_echo_dicom

    root = tmp_path / "dicom"
    for i in range(6):  # recordings 0 and 1 are the same patient (the same PatientID)
        write_echo_dicom(render_echo_case(3, i, n_frames=4, size=40), root / f"rec_{i}.dcm", max(1, i))
    truth = load_dicom(root / "rec_5.dcm")
    (root / "rec_5_mask.npz").unlink()
    write_dicom_seg(truth.labels, truth.label_map, truth.labelled_frames, root / "rec_5.dcm", root / "rec_5_seg.dcm")
    index = open_dataset(parse_data_spec(f"dicom:{root}"))
    assert len(index.refs) == 6 and len(index.patients) == 5
    rec = {r.path.name: r for r in index.refs}
    assert rec["rec_0.dcm"].patient == rec["rec_1.dcm"].patient
    for seed in range(5):
        parts = split_by_patient(members_of_refs(index.refs), {"a": 0.4, "b": 0.4, "test": 0.2}, seed)
        assert [k for k, v in parts.items() if rec["rec_0.dcm"].case_id in v] == [
            k for k, v in parts.items() if rec["rec_1.dcm"].case_id in v]
    seg_case = rec["rec_5.dcm"].load()
    np.testing.assert_array_equal(seg_case.labels, truth.labels)
    assert "rec_" not in seg_case.case_id and seg_case.case_id.startswith("dicom-")


def _nifti_pairs(root: Path, n: int, labels: dict | None) -> Path:
    from app.data.loaders.nifti import write_nifti
    from app.data.phantom.echo import render_echo_case

    root.mkdir(parents=True)
    for i in range(n):
        case = render_echo_case(6, i, n_frames=3, size=40)
        grey = case.frames.mean(axis=-1).astype(np.uint8)
        write_nifti(root / f"scan{i}.nii.gz", np.transpose(grey, (2, 1, 0)), (0.3, 0.3, 1.0))
        write_nifti(root / f"scan{i}_gt.nii.gz", np.transpose(case.labels, (2, 1, 0)), (0.3, 0.3, 1.0))
    if labels is not None:
        (root / "labels.json").write_text(json.dumps(labels))
    return root


def test_nifti_labels_json_names_the_classes(tmp_path: Path) -> None:
    named = _nifti_pairs(tmp_path / "named", 6, {"1": "myocardium"})
    parts = protocol_cases(open_dataset(parse_data_spec(f"nifti:{named}")), ECHO_MYOCARDIUM, "segqc-hw",
                           lambda m: segqc_parts(m, **SEGQC_COUNTS, seed=1))
    case = parts["test"][0]
    assert case.frames.shape == (3, 40, 40) and case.labels.any() and set(np.unique(case.labels)) == {0, 1}
    # Without labels.json a 2D+t pair follows CAMUS (1 = LV): never silently the myocardium.
    plain = _nifti_pairs(tmp_path / "plain", 2, None)
    with pytest.raises(DataError, match="no MYO label"):
        protocol_cases(open_dataset(parse_data_spec(f"nifti:{plain}")), ECHO_MYOCARDIUM, "segqc-hw",
                       lambda m: {"all": [x.case_id for x in m]})


def test_an_empty_folder_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no labelled ACDC cases found; expected patientNNN/"):
        open_dataset(parse_data_spec(f"acdc:{tmp_path}"))


# -------------------------------------------------------------------------------------------- cards
def test_segqc_card_data_names_the_dataset_without_ids(camus2023: Path, tmp_path: Path) -> None:
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.data import card_data, load_protocol

    cfg = replace(preset("smoke").data, source=parse_data_spec(f"camus:{camus2023}").text)
    cases = load_protocol(cfg, tmp_path / "cache")
    again = load_protocol(cfg, tmp_path / "cache")  # from the cache: the same ids and split facts
    assert {k: [c.case_id for c in v] for k, v in again.items()} == {k: [c.case_id for c in v] for k, v in cases.items()}
    info = card_data(cfg, again, "smoke")
    assert info["dataset"] == "CAMUS" and info["split"].startswith("the dataset's official test set")
    assert info["counts"] == {k: len(cases[k]) for k in ("s1", "s2_train", "s2_val", "test")}
    text = json.dumps(info)
    assert not re.search(r"patient\d|camus-[0-9a-f]{12}", text) and str(camus2023) not in text
    assert members_of_cases(again["test"])[0].official == "test"


def test_segqc_bmode_on_camus_keeps_all_three_labels(camus2023: Path, tmp_path: Path) -> None:
    """``segqc-hw --task bmode --data camus:DIR``: LV, MYO and LA as they are (no myocardium-only reduction)."""
    from app.data.case import CAMUS_LABELS
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.data import card_data, load_protocol

    cfg = replace(preset("smoke", task="bmode").data, source=parse_data_spec(f"camus:{camus2023}").text)
    cases = load_protocol(cfg, tmp_path / "cache")
    for case in (c for k in ("s1", "s2", "test") for c in cases[k]):
        assert case.label_map == dict(CAMUS_LABELS) and set(np.unique(case.labels)) == {0, 1, 2, 3}
    assert card_data(cfg, cases, "smoke")["labels"] == "LV 1, MYO 2, LA 3 (CAMUS)"
    contrast = replace(cfg, task="contrast")
    assert set(np.unique(load_protocol(contrast, tmp_path / "contrast")["test"][0].labels)) == {0, 1}  # MYO -> 1


def test_cine_card_data_has_no_ids(acdc: Path) -> None:
    from search.train.cine_config import DataConfig
    from search.train.clips import PatientSplit, card_data, load_cases

    cfg = DataConfig(n_patients=5, n_test=1, clip_length=4, height=32, width=32, render_shape=(32, 32),
                     source=parse_data_spec(f"acdc:{acdc}").text)
    cases = load_cases(cfg)
    split = PatientSplit.for_cases(cases, cfg)
    info = card_data(cfg, split, "smoke", cases)
    assert info["counts"] == {"train": 5, "val": 0, "test": 2} and "official test set" in info["split"]
    assert not re.search(r"acdc-|patient\d", json.dumps(info)) and str(acdc) not in json.dumps(info)
    parts = cine_parts(members_of_cases(cases), test_fraction=0.2, val_fraction=0.2, seed=3)
    assert len(parts["val"]) == 1 and sorted(parts["test"]) == sorted(split.test)
