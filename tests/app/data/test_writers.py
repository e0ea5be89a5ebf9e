"""Writers produce real formats that our loaders (and pydicom / nibabel) read back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from app.cli import main as app_main
from app.data.loaders import load_case, load_dataset
from app.data.phantom.cine import render_cine_case
from app.data.phantom.echo import render_echo_case
from app.data.writers import write_acdc_patient, write_echo_dicom


def test_echo_dicom_round_trip_and_tags(tmp_path: Path) -> None:
    case = render_echo_case(4, 2, n_frames=5, size=64)
    path = write_echo_dicom(case, tmp_path / "echo_0002.dcm", 3)
    assert (tmp_path / "echo_0002_mask.npz").exists()
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.UltrasoundMultiFrameImageStorage and ds.Modality == "US"
    assert str(ds.PatientName) == "PHANTOM^0003" and ds.PatientBirthDate == "" and ds.PatientSex == ""
    assert int(ds.NumberOfFrames) == 5 and float(ds.FrameTime) == pytest.approx(1000.0 / case.frame_rate, rel=1e-4)
    region = ds.SequenceOfUltrasoundRegions[0]
    assert region.PhysicalUnitsXDirection == 3 and region.PhysicalDeltaX == pytest.approx(case.spacing_mm[1] / 10)
    assert region.RegionLocationMaxX1 == 63 and region.RegionLocationMaxY1 == 63
    back = load_case(path)
    assert np.array_equal(back.frames, case.frames) and np.array_equal(back.labels, case.labels)
    assert back.ed == case.ed and back.es == case.es and back.quality == pytest.approx(case.quality)
    assert back.frame_rate == pytest.approx(case.frame_rate, rel=1e-4)
    assert back.spacing_mm == pytest.approx(case.spacing_mm)
    assert "PHANTOM" not in json.dumps(back.meta, default=str)


def test_echo_dicom_is_deterministic(tmp_path: Path) -> None:
    case = render_echo_case(0, 0, n_frames=2, size=48)
    a = write_echo_dicom(case, tmp_path / "a" / "x.dcm", 1).read_bytes()
    b = write_echo_dicom(case, tmp_path / "b" / "x.dcm", 1).read_bytes()
    assert a == b


def test_cine_acdc_round_trip(tmp_path: Path) -> None:
    case = render_cine_case(2, 1, n_frames=6, n_slices=3, shape=(48, 40))
    folder = write_acdc_patient(case, tmp_path, 7)
    assert folder.name == "patient007"
    cfg = (folder / "Info.cfg").read_text()
    assert f"ED: {case.ed + 1}\n" in cfg and f"ES: {case.es + 1}\n" in cfg and "NbFrame: 6" in cfg
    vol = nib.load(folder / "patient007_4d.nii.gz")
    assert vol.shape == (48, 40, 3, 6) and vol.header.get_xyzt_units() == ("mm", "msec")
    gt = np.asarray(nib.load(folder / f"patient007_frame{case.es + 1:02d}_gt.nii.gz").dataobj)
    assert gt.dtype == np.uint8 and gt.shape == (48, 40, 3)
    back = load_case(folder)
    assert np.abs(back.frames - case.frames).max() <= 0.5  # int16 like ACDC
    assert np.array_equal(back.labels, case.labels) and back.labelled_frames == tuple(range(6))
    assert back.frame_rate == pytest.approx(case.frame_rate, rel=1e-4) and back.es == case.es


def test_phantom_cli_writes_both_modalities(tmp_path: Path) -> None:
    assert app_main(["phantom", "--modality", "echo", "--cases", "2", "--out", str(tmp_path / "e"),
                     "--frames", "3", "--size", "64", "--seed", "5"]) == 0
    assert app_main(["phantom", "--modality", "cine", "--cases", "2", "--out", str(tmp_path / "c"),
                     "--frames", "4", "--slices", "2"]) == 0
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert [c["path"] for c in manifest["cases"]] == ["echo_0000.dcm", "echo_0001.dcm"]
    echo = load_dataset(tmp_path / "e")
    cine = load_dataset(tmp_path / "c")
    assert [c.frames.shape for c in echo] == [(3, 64, 64, 3)] * 2
    assert [c.case_id for c in cine] == ["patient001", "patient002"] and cine[0].frames.shape == (4, 2, 128, 112)
    assert echo[1].quality == pytest.approx(render_echo_case(5, 1, n_frames=3, size=64).quality)


def test_phantom_cli_rejects_bad_arguments(tmp_path: Path, capsys) -> None:
    assert app_main(["phantom", "--modality", "echo", "--cases", "0", "--out", str(tmp_path)]) == 2
    assert "--cases" in capsys.readouterr().err
