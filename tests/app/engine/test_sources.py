"""Frame sources: real DICOM echoes, other DICOM encodings, video, NIfTI, images, phantom, bad input."""

from __future__ import annotations


import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from app.data.case import DataError
from app.engine.sources import open_source
from app.engine.sources.base import ArraySource
from app.engine.types import SourceInfo

pytestmark = pytest.mark.timeout(60)


def test_real_apical_echo_is_cropped_paced_and_rgb():
    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    with open_source(path) as source:
        info = source.info
        assert info.n_frames == 120 and info.modality == "echo" and source.seekable
        assert info.frame_rate == pytest.approx(30.0, abs=0.01)  # FrameTime 33.333 ms
        assert info.spacing_mm == pytest.approx((0.5105, 0.5105), abs=1e-3)  # 0.051 cm
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 3:
                break
    # cropped to the ultrasound region (84, 31)-(595, 414) of a 640x480 frame
    assert frames[0].image.shape == (384, 512, 3) and frames[0].image.dtype == np.uint8
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].t_arrival < frames[1].t_arrival
    assert frames[0].image.mean() > 5  # decoded, not blank
    ds = pydicom.dcmread(path)
    assert str(ds.PatientName) not in repr(info)


def test_ybr_example_decodes_to_grey_looking_rgb():
    with open_source(pydicom.examples.get_path("ybr_color")) as source:
        frames = list(source)
    assert len(frames) == 30
    img = frames[10].image.astype(int)
    # An echo is (mostly) grey: after YBR -> RGB the channels agree; undecoded YBR would not.
    assert np.median(np.abs(img[..., 0] - img[..., 1])) <= 2


def test_seek_and_reiterate():
    with open_source(pydicom.examples.get_path("ybr_color")) as source:
        source.seek(25)
        assert [f.index for f in source] == [25, 26, 27, 28, 29]
        with pytest.raises(ValueError):
            source.seek(30)
        with pytest.raises(ValueError):
            source.set_slice(1)


@pytest.mark.parametrize("name, n, shape", [
    ("SC_rgb_rle_2frame.dcm", 2, (100, 100, 3)),  # RLE (modality OT: opened with force)
    ("examples_palette.dcm", 1, (290, 680, 3)),   # palette colour, cropped to its US region
])
def test_other_dicom_encodings(name, n, shape):
    with open_source(get_testdata_file(name), force=True) as source:
        frames = list(source)
    assert len(frames) == n and frames[0].image.shape == shape and frames[0].image.dtype == np.uint8


@pytest.mark.parametrize("name, problem", [
    ("reportsi.dcm", "non-image DICOM"),
    ("MR_truncated.dcm", "truncated"),
    ("JPEGLSNearLossless_08.dcm", "unsupported transfer syntax"),
])
def test_bad_dicom_names_file_and_problem(name, problem):
    path = get_testdata_file(name)
    with pytest.raises(DataError) as err:
        open_source(path)
    assert name in str(err.value) and problem in str(err.value)


def test_truncated_and_garbage_files(tmp_path):
    src = get_testdata_file("color3d_jpeg_baseline.dcm")
    data = open(src, "rb").read()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 3])
    with open_source(str(cut)) as source:  # the complete frames play, then the source ends as partial
        assert source.info.n_frames == 39 and source.partial == "truncated: 39 of 120 frames readable"
        source.seek(36)
        with pytest.raises(DataError, match="cut.dcm: truncated: 39 of 120 frames readable"):
            list(source)
    cut.write_bytes(data[:1000])  # cut inside the header
    with pytest.raises(DataError) as err:
        open_source(str(cut))
    assert "cut.dcm" in str(err.value)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 50)
    with pytest.raises(DataError):
        open_source(str(garbage))
    with pytest.raises(DataError, match="missing"):
        open_source(str(tmp_path / "nothing.dcm"))


def test_video_file_roundtrip_and_seek(tmp_path):
    path = tmp_path / "loop.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    rng = np.random.default_rng(0)
    for k in range(10):
        frame = np.full((48, 64, 3), k * 20, np.uint8)
        frame[:, :, 2] = 200  # red in BGR
        writer.write(frame + rng.integers(0, 3, frame.shape, dtype=np.uint8))
    writer.release()
    with open_source(str(path)) as source:
        assert source.info.frame_rate == pytest.approx(25.0)
        frames = list(source)
        assert len(frames) == 10 and frames[0].image.shape == (48, 64, 3)
        assert frames[0].image[..., 0].mean() > 150  # converted to RGB: red first
        source.seek(7)
        again = [f.index for f in source]
        assert again == [7, 8, 9]
    broken = tmp_path / "broken.avi"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="broken.avi"):
        open_source(str(broken))


def test_nifti_4d_cine_with_slices(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(1)
    data = rng.random((40, 36, 5, 6)).astype(np.float32)  # x, y, z, t
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0]))
    img.header.set_zooms((1.5, 1.5, 8.0, 0.04))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(tmp_path / "cine_4d.nii.gz"))
    with open_source(str(tmp_path / "cine_4d.nii.gz"), slice=3) as source:
        assert source.info.modality == "cine" and source.info.n_slices == 5 and source.info.n_frames == 6
        assert source.info.frame_rate == pytest.approx(25.0)
        frames = list(source)
    assert frames[2].image.shape == (40, 36) and frames[2].meta["slice"] == 3
    np.testing.assert_array_equal(frames[2].image, data[:, :, 3, 2])
    with pytest.raises(DataError, match="slice 9"):
        open_source(str(tmp_path / "cine_4d.nii.gz"), slice=9)


def test_image_folder_and_wrong_dimensions(tmp_path):
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"f{k:02d}.png"), np.full((20, 30), 50 * k, np.uint8))
    with open_source(str(tmp_path)) as source:
        frames = list(source)
    assert [f.image.shape for f in frames] == [(20, 30)] * 3 and frames[2].image[0, 0] == 100
    cv2.imwrite(str(tmp_path / "f03.png"), np.zeros((21, 30), np.uint8))
    with open_source(str(tmp_path)) as source, pytest.raises(DataError, match="f03.png"):
        list(source)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        open_source(str(empty))


def test_array_source_ground_truth_only_on_labelled_frames():
    frames = np.zeros((4, 16, 16), np.uint8)
    labels = np.ones((4, 16, 16), np.uint8)
    source = ArraySource(SourceInfo("t", "echo", 10.0), frames, labels, labelled_frames=(0, 2))
    gts = [f.ground_truth is not None for f in source]
    assert gts == [True, False, True, False] and source.info.has_ground_truth


def test_phantom_live_source_streams_cases_with_labels():
    with open_source("phantom:echo?seed=3&case=1&frames=4") as source:
        assert not source.seekable and source.info.n_frames is None and source.info.has_ground_truth
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 6:  # crosses into the next rendered case
                break
    assert [f.index for f in frames] == list(range(6))
    assert frames[0].image.ndim == 3 and frames[0].ground_truth.shape == frames[0].image.shape[:2]
    assert frames[3].meta["case"] != frames[4].meta["case"]
    with pytest.raises(ValueError):
        source.seek(0)


def test_unknown_specs_are_clear(tmp_path):
    with pytest.raises(DataError, match="missing"):
        open_source(str(tmp_path / "none.mp4"))
    with pytest.raises(DataError):
        open_source("phantom:ultrasoundish")
    with pytest.raises(DataError, match="camera"):
        open_source("camera:x")
    with pytest.raises(DataError, match="igtl"):
        open_source("igtl://nohost")


def test_truncated_nifti(tmp_path):
    import nibabel as nib

    path = tmp_path / "cine_4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 2, 4), np.float32), np.eye(4)), str(path))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match="cine_4d.nii.gz"):
        open_source(str(path))
