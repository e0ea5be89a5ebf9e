"""Bad input to the data loaders: salvage what is readable, say what is missing, name the file."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from app.data.case import DataError
from app.data.loaders import load_case
from app.data.loaders.dicom import load_dicom
from app.data.loaders.dicom_read import quiet_pydicom, read_dicom, short_reason
from tests.app.data.fixtures import write_acdc, write_echonet

YBR = pydicom.examples.get_path("ybr_color")  # US, JPEG baseline, 30 frames


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_truncated_dicom_loads_its_complete_frames(tmp_path: Path, caplog) -> None:
    data = Path(YBR).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with caplog.at_level(logging.WARNING):
        case = load_case(path)
    n = case.n_frames
    assert 10 <= n < 30 and case.meta["partial"] == f"truncated: {n} of 30 frames readable"
    assert case.frames.shape[1:] == (240, 320, 3) and case.frames[-1].mean() > 5
    assert any("cut.dcm" in m and "truncated" in m for m in _warnings(caplog))


def test_corrupt_frame_mid_file_keeps_the_frames_before_it(tmp_path: Path, caplog) -> None:
    ds = pydicom.dcmread(YBR)
    frames = list(generate_frames(ds.PixelData, number_of_frames=30))
    frames[12] = b"junk" * 100
    ds.PixelData = encapsulate(frames)
    ds.save_as(tmp_path / "bad.dcm")
    with caplog.at_level(logging.WARNING):
        case = load_dicom(tmp_path / "bad.dcm")
    assert case.n_frames == 12 and case.meta["partial"].startswith("frame 12: could not be decoded (")
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]


def test_ct_is_refused_by_the_loader_unless_forced() -> None:
    path = get_testdata_file("CT_small.dcm")
    with pytest.raises(DataError, match="CT_small.dcm: modality CT"):
        load_case(path)
    case = load_dicom(Path(path), force=True)
    assert case.n_frames == 1


def test_dicom_frame_rate_out_of_range_is_replaced(tmp_path: Path, caplog) -> None:
    ds = pydicom.dcmread(YBR)
    ds.FrameTime = 1e6
    ds.save_as(tmp_path / "slow.dcm")
    with caplog.at_level(logging.WARNING):
        case = load_dicom(tmp_path / "slow.dcm")
    assert case.frame_rate == pytest.approx(30.0) and case.meta["frame_rate_assumed"]
    assert any("slow.dcm" in m and "FrameTime 1e+06 ms" in m and "30 fps" in m for m in _warnings(caplog))


def test_read_dicom_counts_frames_and_says_nothing_for_intact_files(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        data = read_dicom(YBR)
    assert (data.n_frames, data.n_declared, data.note) == (30, 30, None) and not _warnings(caplog)


def test_quiet_pydicom_collects_instead_of_printing(caplog) -> None:
    with caplog.at_level(logging.DEBUG), quiet_pydicom() as messages:
        logging.getLogger("pydicom").error("first line\nsecond line")
    assert messages == ["first line"] and not caplog.records
    logging.getLogger("pydicom").warning("outside")  # outside the block pydicom speaks again
    assert [r.getMessage() for r in caplog.records] == ["outside"]


def test_short_reason_is_one_line_without_addresses() -> None:
    exc = RuntimeError("Unable to decode as exceptions were raised by all available plugins:\n"
                       "  pillow: cannot identify image file <_io.BytesIO object at 0x7f44a71b38d0>\n"
                       "  pydicom: broken")
    assert short_reason(exc) == "pillow: cannot identify image file; pydicom: broken"


def test_acdc_folder_without_info_cfg_says_what_to_do(tmp_path: Path) -> None:
    folder = write_acdc(tmp_path)
    (folder / "Info.cfg").unlink()
    with pytest.raises(DataError) as err:
        load_case(folder)
    problem = err.value.problem
    assert "without Info.cfg" in problem and "ED" in problem and "patient001_4d.nii.gz" in problem
    assert "load_dataset" not in problem and "give the 4D file itself" in problem


def test_dataset_folder_message_is_for_people(tmp_path: Path) -> None:
    write_acdc(tmp_path)
    (tmp_path / "patient002").mkdir()
    with pytest.raises(DataError, match="dataset folder") as err:
        load_case(tmp_path)
    assert "load_dataset" not in str(err.value) and "2 patient folders" in str(err.value)


def test_acdc_absurd_time_step_is_replaced(tmp_path: Path, caplog) -> None:
    import nibabel as nib

    folder = write_acdc(tmp_path)
    four_d = folder / "patient001_4d.nii.gz"
    img = nib.load(four_d)
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_zooms(img.header.get_zooms()[:3] + (1e-7,))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, four_d)
    with caplog.at_level(logging.WARNING):
        case = load_case(folder)
    assert 1.0 <= case.frame_rate <= 200.0 and case.meta["frame_rate_assumed"]
    assert any("patient001_4d.nii.gz" in m and "1e-07 sec" in m for m in _warnings(caplog))


def test_echonet_fps_zero_is_replaced(tmp_path: Path, caplog) -> None:
    root = write_echonet(tmp_path / "echonet", names=("0X1A",), size=32)
    rows = list(csv.DictReader(open(root / "FileList.csv", newline="")))
    rows[0]["FPS"] = "0"
    with open(root / "FileList.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with caplog.at_level(logging.WARNING):
        case = load_case(root / "Videos" / "0X1A.avi")
    assert case.frame_rate == pytest.approx(30.0)
    assert any("FileList.csv" in m and "FPS 0 fps" in m for m in _warnings(caplog))
