"""Bad input: one DataError that names the file and says what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app.data.case import DataError
from app.data.loaders import load_case
from app.data.phantom.echo import render_echo_case
from app.data.writers import write_echo_dicom
from tests.app.data.fixtures import write_acdc, write_camus_2023


def _raises(path_fragment: str, problem_fragment: str, fn, *args) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args)
    err = info.value
    assert path_fragment in err.path, (err.path, path_fragment)
    assert problem_fragment in err.problem, err.problem
    assert path_fragment in str(err)
    return err


def test_missing_file(tmp_path: Path) -> None:
    _raises("nothing.dcm", "missing", load_case, tmp_path / "nothing.dcm")


def test_missing_gt_file_in_acdc_patient(tmp_path: Path) -> None:
    folder = write_acdc(tmp_path)
    (folder / "patient001_frame03_gt.nii.gz").unlink()
    _raises("patient001_frame03_gt.nii.gz", "missing", load_case, folder)


def test_truncated_nifti(tmp_path: Path) -> None:
    folder = write_acdc(tmp_path)
    four_d = folder / "patient001_4d.nii.gz"
    data = four_d.read_bytes()
    four_d.write_bytes(data[: len(data) // 2])
    _raises("patient001_4d.nii.gz", "truncated", load_case, folder)


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    import pydicom

    path = write_echo_dicom(render_echo_case(0, 0, n_frames=2, size=64), tmp_path / "echo.dcm", 1)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    _raises("echo.dcm", "no pixel data", load_case, path)


def test_not_a_dicom(tmp_path: Path) -> None:
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"hello" * 100)
    _raises("fake.dcm", "DICOM", load_case, path)


def test_labels_outside_known_values(tmp_path: Path) -> None:
    folder = write_acdc(tmp_path)
    gt_path = folder / "patient001_frame01_gt.nii.gz"
    img = nib.load(gt_path)
    gt = np.asarray(img.dataobj).copy()
    gt[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(gt, img.affine), gt_path)
    err = _raises("patient001_frame01_gt.nii.gz", "outside the known values", load_case, folder)
    assert "7" in err.problem


def test_image_and_label_shapes_disagree(tmp_path: Path) -> None:
    folder = write_acdc(tmp_path)
    gt_path = folder / "patient001_frame03_gt.nii.gz"
    img = nib.load(gt_path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-2], img.affine), gt_path)
    _raises("patient001_frame03_gt.nii.gz", "does not match", load_case, folder)


def test_camus_sequence_label_shape_mismatch(tmp_path: Path) -> None:
    folder = write_camus_2023(tmp_path)
    gt_path = folder / "patient0001_4CH_half_sequence_gt.nii.gz"
    img = nib.load(gt_path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:, :, :2], img.affine), gt_path)
    _raises("half_sequence_gt", "does not match", load_case, folder)


def test_dicom_mask_with_wrong_shape(tmp_path: Path) -> None:
    from app.data.loaders.phantom_disk import save_case_npz

    case = render_echo_case(0, 0, n_frames=2, size=64)
    path = write_echo_dicom(case, tmp_path / "echo.dcm", 1)
    case.labels = case.labels[:, :32]
    save_case_npz(case, tmp_path / "echo_mask.npz", with_frames=False)
    _raises("echo_mask.npz", "does not match", load_case, path)


def test_bad_info_cfg(tmp_path: Path) -> None:
    folder = write_acdc(tmp_path)
    (folder / "Info.cfg").write_text("ED: one\nES: 3\n")
    _raises("Info.cfg", "ED is not a number", load_case, folder)


def test_truncated_case_npz(tmp_path: Path) -> None:
    from app.data.loaders.phantom_disk import save_case_npz

    path = save_case_npz(render_echo_case(0, 0, n_frames=2, size=64), tmp_path / "case.npz")
    path.write_bytes(path.read_bytes()[:200])
    _raises("case.npz", "truncated", load_case, path)


def test_dataset_folder_is_not_a_case(tmp_path: Path) -> None:
    write_acdc(tmp_path)
    shutil.copytree(tmp_path / "patient001", tmp_path / "patient002")
    _raises(str(tmp_path), "dataset folder", load_case, tmp_path)
