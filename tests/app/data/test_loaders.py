"""Loaders read each dataset's exact on-disk format (fixtures written at test time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.data.case import ACDC_LABELS, CAMUS_LABELS
from app.data.loaders import load_case, load_dataset
from app.data.loaders.acdc import load_acdc
from app.data.loaders.camus import load_camus_patient
from app.data.loaders.echonet import EchoNetDataset, lv_polygon
from app.data.loaders.metaimage import read_metaimage, write_metaimage
from tests.app.data.fixtures import write_acdc, write_camus_2023, write_echonet


def test_acdc_patient(tmp_path: Path) -> None:
    folder = write_acdc(tmp_path / "training", t=5, z=3, xy=(24, 20), ed=1, es=3)
    case = load_case(folder)
    assert case.modality == "cine" and case.frames.shape == (5, 3, 24, 20)
    assert case.ed == 0 and case.es == 2 and case.labelled_frames == (0, 2)
    assert case.spacing_mm == (1.5, 1.5) and dict(case.label_map) == dict(ACDC_LABELS)
    assert set(np.unique(case.labels[0])) == {0, 1, 2, 3} and not case.labels[1].any()
    assert case.meta["group"] == "DCM" and "Weight" not in str(case.meta)
    # Same array as the NIfTI (X, Y, Z, T) -> (T, Z, X, Y).
    import nibabel as nib

    vol = np.asarray(nib.load(folder / "patient001_4d.nii.gz").dataobj)
    assert np.array_equal(case.frames[4, 2], vol[:, :, 2, 4])
    assert [c.case_id for c in load_acdc(tmp_path / "training")] == ["patient001"]


def test_camus_2023_nifti(tmp_path: Path) -> None:
    folder = write_camus_2023(tmp_path, t=4, hw=(30, 20))
    case = load_case(folder)
    assert case.modality == "echo" and case.frames.shape == (4, 30, 20) and case.frames.dtype == np.uint8
    assert case.labelled_frames == (0, 1, 2, 3) and case.ed == 0 and case.es == 3
    assert dict(case.label_map) == dict(CAMUS_LABELS) and set(np.unique(case.labels)) == {0, 1, 2, 3}
    assert case.spacing_mm == pytest.approx((0.2, 0.3)) and case.frame_rate == 45.0
    assert case.quality_bin == "medium" and "Age" not in str(case.meta)


def _write_camus_2019(folder: Path, name: str, t: int, hw: tuple[int, int], writer) -> None:
    rng = np.random.default_rng(2)
    seq = rng.integers(0, 255, size=(t, *hw)).astype(np.uint8)
    writer(folder / f"{name}_4CH_sequence.mhd", seq, (0.154, 0.154, 1.0))
    for tag, idx in (("ED", 0), ("ES", t - 2)):
        writer(folder / f"{name}_4CH_{tag}.mhd", seq[idx : idx + 1], (0.154, 0.154, 1.0))
        gt = np.zeros((1, *hw), np.uint8)
        gt[0, 5:15, 5:10], gt[0, 5:15, 10:12], gt[0, 16:20, 5:10] = 1, 2, 3
        writer(folder / f"{name}_4CH_{tag}_gt.mhd", gt, (0.154, 0.154, 1.0))
    (folder / "Info_4CH.cfg").write_text(f"ED: 1\nES: {t - 1}\nNbFrame: {t}\nSex: M\nAge: 70\nImageQuality: Good\nLVedv: 90\nLVesv: 40\nLVef: 55\n")


def test_camus_2019_metaimage_with_our_writer(tmp_path: Path) -> None:
    folder = tmp_path / "patient0002"
    folder.mkdir()
    _write_camus_2019(folder, "patient0002", 6, (24, 16), lambda p, a, s: write_metaimage(p, a, s))
    case = load_camus_patient(folder)
    assert case.meta["release"] == "2019-mhd" and case.frames.shape == (6, 24, 16)
    assert case.labelled_frames == (0, 4) and case.es == 4 and case.labels[4, 6, 6] == 1 and case.labels[4, 17, 6] == 3
    assert case.meta["frame_rate_assumed"] is True


def test_camus_2019_metaimage_written_by_simpleitk(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")

    def writer(path: Path, arr: np.ndarray, spacing) -> None:
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(spacing)
        sitk.WriteImage(img, str(path))

    folder = tmp_path / "patient0003"
    folder.mkdir()
    _write_camus_2019(folder, "patient0003", 5, (20, 12), writer)
    case = load_case(folder)
    seq = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "patient0003_4CH_sequence.mhd")))
    assert np.array_equal(case.frames, seq) and case.spacing_mm == pytest.approx((0.154, 0.154))


def test_metaimage_round_trip_compressed(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    write_metaimage(tmp_path / "x.mhd", arr, (0.5, 0.25, 2.0), compress=True)
    back, spacing = read_metaimage(tmp_path / "x.mhd")
    assert np.array_equal(back, arr) and spacing == (0.5, 0.25, 2.0)


def test_echonet_dynamic(tmp_path: Path) -> None:
    root = write_echonet(tmp_path / "EchoNet-Dynamic")
    ds = EchoNetDataset(root)
    assert ds.names("TRAIN") == ["0X1A"]
    case = load_case(root / "Videos" / "0X1A.avi")
    assert case.frames.shape == (12, 112, 112, 3) and case.frame_rate == 50.0
    assert case.labelled_frames == (2, 8) and case.ed == 2 and case.es == 8
    # The larger tracing (half-width 20 px over ~60 px) is ED; fillPoly area close to the polygon's.
    assert abs(int(case.labels[2].sum()) - 40 * 60) < 200
    assert np.isnan(case.spacing_mm[0])
    assert len(load_dataset(root)) == 2


def test_echonet_polygon_order() -> None:
    rows = [{"X1": "5", "Y1": "0", "X2": "5", "Y2": "10"}, {"X1": "1", "Y1": "2", "X2": "9", "Y2": "2"},
            {"X1": "2", "Y1": "8", "X2": "8", "Y2": "8"}]
    poly = lv_polygon(rows)
    assert poly.tolist() == [[1.0, 2.0], [2.0, 8.0], [8.0, 8.0], [9.0, 2.0]]


def test_real_dicom_recording() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    case = load_case(path)
    assert case.frames.shape == (120, 480, 640, 3) and case.frames.dtype == np.uint8
    assert case.frame_rate == pytest.approx(30.0, abs=0.01)
    assert case.spacing_mm == pytest.approx((0.5105, 0.5105), abs=1e-3)
    assert case.labels is None and case.case_id == "color3d_jpeg_baseline"
