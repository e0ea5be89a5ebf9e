"""Bad input to the frame sources: no hangs, no tracebacks, one line naming the file and the problem.

Absurd timing is replaced (with one warning), corrupt and truncated recordings play what is
readable and then end as ``PartialSource``, non-ultrasound DICOM is refused unless forced, and an
OpenIGTLink server that sends junk or hangs up is named as such.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from app.data.case import Case, DataError
from app.data.frame_rate import checked_fps
from app.engine.sources import open_source
from app.engine.sources.base import PartialSource
from app.engine.sources.cases import case_source

pytestmark = pytest.mark.timeout(60)

YBR = pydicom.examples.get_path("ybr_color")  # US, JPEG baseline, 30 frames of 240x320, FrameTime 33.3 ms


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _ybr_with(tmp_path: Path, name: str = "echo.dcm", **changes) -> Path:
    ds = pydicom.dcmread(YBR)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    path = tmp_path / name
    ds.save_as(path)
    return path


def _ybr_frames() -> tuple[pydicom.Dataset, list[bytes]]:
    ds = pydicom.dcmread(YBR)
    return ds, list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))


# -- 1. timing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, found, used", [
    ({"FrameTime": 1e6}, "FrameTime 1e+06 ms", "playing at 30 fps"),
    ({"FrameTime": 0.01}, "FrameTime 0.01 ms", "playing at 30 fps"),
    ({"FrameTime": None, "CineRate": 0}, "CineRate 0 fps", "playing at 30 fps"),
    ({"FrameTime": None, "RecommendedDisplayFrameRate": 5000}, "RecommendedDisplayFrameRate 5000 fps", "playing at 30"),
    ({"FrameTime": 1e6, "CineRate": 50}, "FrameTime 1e+06 ms", "using CineRate 50 fps instead"),
])
def test_absurd_dicom_timing_is_replaced_with_one_warning(tmp_path, caplog, changes, found, used):
    path = _ybr_with(tmp_path, **changes)
    with caplog.at_level(logging.WARNING):
        source = open_source(str(path))
    source.close()
    expected = 50.0 if "CineRate" in used else 30.0
    assert source.info.frame_rate == pytest.approx(expected)
    lines = [m for m in _warnings(caplog) if "plausible" in m]
    assert len(lines) == 1 and "echo.dcm" in lines[0] and found in lines[0] and used in lines[0]


def _avi(path: Path, n: int = 30, fps: float = 25.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(n):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def _patch_avi_rate(path: Path, scale: int, rate: int) -> None:
    """Rewrite the stream header's dwScale/dwRate (fps = rate / scale) and the main header to match."""
    data = bytearray(path.read_bytes())
    strh = data.find(b"strh")
    struct.pack_into("<II", data, strh + 28, scale, rate)
    avih = data.find(b"avih")
    struct.pack_into("<I", data, avih + 8, int(1e6 * scale / rate))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("scale, rate, shown", [(1, 1_000_000, "1e+06 fps"), (1000, 1, "0.001 fps")])
def test_video_with_absurd_fps_plays_at_30_with_a_warning(tmp_path, caplog, scale, rate, shown):
    path = _avi(tmp_path / "clip.avi", n=5)
    _patch_avi_rate(path, scale, rate)
    with caplog.at_level(logging.WARNING), open_source(str(path)) as source:
        assert source.info.frame_rate == pytest.approx(30.0)
        assert len(list(source)) == 5
    lines = [m for m in _warnings(caplog) if "plausible" in m]
    assert len(lines) == 1 and "clip.avi" in lines[0] and shown in lines[0] and "30 fps" in lines[0]


@pytest.mark.parametrize("value", [0.0, float("nan"), float("inf"), -3.0, 1e6, 0.2, None, "x"])
def test_implausible_rates_fall_back_to_the_default(caplog, value):
    with caplog.at_level(logging.WARNING):
        assert checked_fps("f.avi", value, f"frame rate {value}", 30.0) == 30.0
    assert len(_warnings(caplog)) == 1 and "f.avi" in _warnings(caplog)[0]


def test_plausible_rates_pass_without_a_word(caplog):
    with caplog.at_level(logging.WARNING):
        assert checked_fps("f.avi", 1.0, "x", 30.0) == 1.0 and checked_fps("f.avi", 200.0, "x", 30.0) == 200.0
    assert not _warnings(caplog)


def test_nifti_cine_without_time_unit_plays_at_25_fps_with_a_warning(tmp_path, caplog):
    import nibabel as nib

    path = tmp_path / "cine_4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2, 4), np.float32), np.eye(4)), str(path))  # t unit unknown, step 1
    with caplog.at_level(logging.WARNING), open_source(str(path)) as source:
        assert source.info.frame_rate == pytest.approx(25.0)
    lines = _warnings(caplog)
    assert len(lines) == 1 and "cine_4d.nii.gz" in lines[0] and "no time unit" in lines[0] and "25 fps" in lines[0]


def test_nifti_with_an_absurd_time_step_is_replaced(tmp_path, caplog):
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((16, 16, 2, 4), np.float32), np.eye(4))
    img.header.set_zooms((1.0, 1.0, 8.0, 1e-6))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(tmp_path / "fast_4d.nii.gz"))
    with caplog.at_level(logging.WARNING), open_source(str(tmp_path / "fast_4d.nii.gz")) as source:
        assert source.info.frame_rate == pytest.approx(25.0)
    assert any("fast_4d.nii.gz" in m and "1e-06 sec" in m for m in _warnings(caplog))


@pytest.mark.parametrize("rate", [0.0, 1e-6, float("nan")])
def test_any_recording_with_an_absurd_rate_is_paced_sanely(caplog, rate):
    case = Case("c", "echo", np.zeros((3, 16, 16), np.uint8), None, {}, (1.0, 1.0), rate)
    with caplog.at_level(logging.WARNING):
        source = case_source(case)
    assert source.info.frame_rate == pytest.approx(30.0) and len(_warnings(caplog)) == 1


# -- 2. corrupt frames ------------------------------------------------------------------------------
def test_corrupt_jpeg_frame_mid_file_plays_the_frames_before_it_without_a_traceback(tmp_path, caplog, capfd):
    ds, frames = _ybr_frames()
    frames[5] = b"\x00not a jpeg" * 40
    ds.PixelData = encapsulate(frames)
    path = tmp_path / "corrupt.dcm"
    ds.save_as(path)
    got = []
    with caplog.at_level(logging.DEBUG), open_source(str(path)) as source:
        with pytest.raises(DataError) as err:
            for frame in source:
                got.append(frame.index)
    assert got == [0, 1, 2, 3, 4]
    message = str(err.value)
    assert message.startswith(f"{path}: frame 5: could not be decoded (") and "\n" not in message
    assert " at 0x" not in message  # no object addresses from the decoder
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]  # pydicom's logged traceback is gone
    out, errs = capfd.readouterr()
    assert "Traceback" not in out + errs


def test_corrupt_first_frame_fails_at_open_in_one_line(tmp_path):
    ds, frames = _ybr_frames()
    frames[0] = b"\xff\xd8" + b"\x00" * 300  # a JPEG start marker and nothing decodable
    ds.PixelData = encapsulate(frames)
    ds.save_as(tmp_path / "bad0.dcm")
    with pytest.raises(DataError, match=r"bad0.dcm: frame 0: could not be decoded \(") as err:
        open_source(str(tmp_path / "bad0.dcm"))
    assert "\n" not in str(err.value)


def test_corrupt_rle_frame_is_one_line(tmp_path, capfd):
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=2))
    frames[1] = frames[1][:64] + b"\x7f" * 100
    ds.PixelData = encapsulate(frames)
    ds.save_as(tmp_path / "rle.dcm")
    with open_source(str(tmp_path / "rle.dcm"), force=True) as source:
        with pytest.raises(DataError, match=r"rle.dcm: frame 1: could not be decoded \(.*RLE") as err:
            list(source)
    assert "\n" not in str(err.value) and "Traceback" not in "".join(capfd.readouterr())


# -- 3. truncated DICOM -----------------------------------------------------------------------------
def test_truncated_encapsulated_dicom_plays_its_complete_frames_then_reports_partial(tmp_path, caplog):
    data = Path(get_testdata_file("color3d_jpeg_baseline.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: int(len(data) * 0.9)])
    with caplog.at_level(logging.WARNING):
        source = open_source(str(path))
    with source:
        n = source.info.n_frames
        assert 95 <= n < 120 and source.partial == f"truncated: {n} of 120 frames readable"
        assert any(f"truncated: {n} of 120 frames readable" in m and "cut.dcm" in m for m in _warnings(caplog))
        source.seek(n - 2)
        got = []
        with pytest.raises(PartialSource, match=f"cut.dcm: truncated: {n} of 120 frames readable"):
            for frame in source:
                got.append(frame)
        assert [f.index for f in got] == [n - 2, n - 1] and got[-1].image.mean() > 5  # decoded, not blank


def test_truncated_native_dicom_keeps_its_whole_frames(tmp_path):
    data = Path(get_testdata_file("emri_small.dcm")).read_bytes()  # MR, 10 native frames of 64x64 16-bit
    path = tmp_path / "mr_cut.dcm"
    path.write_bytes(data[: int(len(data) * 0.9)])
    with open_source(str(path)) as source:
        assert source.info.modality == "cine" and source.info.n_frames == 8
        with pytest.raises(PartialSource, match="truncated: 8 of 10 frames readable"):
            frames = []
            for frame in source:
                frames.append(frame)
    reference = pydicom.dcmread(get_testdata_file("emri_small.dcm")).pixel_array
    assert len(frames) == 8
    np.testing.assert_array_equal(frames[7].image, reference[7].astype(np.float32))


def test_dicom_without_a_single_complete_frame_is_a_data_error(tmp_path):
    data = Path(YBR).read_bytes()
    path = tmp_path / "stub.dcm"
    ds = pydicom.dcmread(YBR, stop_before_pixels=True)
    header_end = len(data) - len(ds.PixelData) if hasattr(ds, "PixelData") else data.find(b"\xe0\x7f\x10\x00")
    path.write_bytes(data[: header_end + 200])  # the pixel data element starts, no frame completes
    with pytest.raises(DataError, match="stub.dcm: truncated"):
        open_source(str(path))


def test_replay_of_a_truncated_dicom_reports_the_source_as_partial(tmp_path):
    from app.engine.replay import replay

    data = Path(YBR).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: int(len(data) * 0.5)])
    report = replay(str(path), report=tmp_path / "r.json", fast=True)
    assert "truncated:" in report["source_error"] and "of 30 frames readable" in report["source_error"]


# -- 4. frame counts that disagree ------------------------------------------------------------------
def test_number_of_frames_smaller_than_the_data_is_named(tmp_path, caplog):
    path = _ybr_with(tmp_path, NumberOfFrames=5)
    with caplog.at_level(logging.WARNING), open_source(str(path)) as source:
        assert len(list(source)) == 5
    lines = [m for m in _warnings(caplog) if "NumberOfFrames" in m]
    assert len(lines) == 1 and "echo.dcm" in lines[0] and "5" in lines[0] and "30 frames" in lines[0]


def test_number_of_frames_larger_than_the_data_is_partial(tmp_path):
    path = _ybr_with(tmp_path, NumberOfFrames=40)
    with open_source(str(path)) as source:
        assert source.info.n_frames == 30
        with pytest.raises(PartialSource, match="truncated: 30 of 40 frames readable"):
            list(source)


def test_video_cut_in_half_is_partial(tmp_path, caplog):
    whole = _avi(tmp_path / "whole.avi", n=30)
    cut = tmp_path / "half.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with open_source(str(cut)) as source:
        frames = []
        with caplog.at_level(logging.WARNING), pytest.raises(PartialSource, match=r"half.avi: truncated: \d+ of 30"):
            for frame in source:
                frames.append(frame)
    assert 5 <= len(frames) < 30 and source.partial == f"truncated: {len(frames)} of 30 frames readable"
    with open_source(str(whole)) as source:  # an intact file ends quietly
        assert len(list(source)) == 30 and source.partial is None



def test_video_cut_counts_the_same_frames_after_a_seek_as_in_order(tmp_path, caplog):
    """Previews seek (the echo-mode check reads frames spread over the file); a seek past the cut
    used to mark the file truncated at the seek target (17 of 30), playback then found 16."""
    whole = _avi(tmp_path / "whole.avi", n=30)
    cut = tmp_path / "half.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with caplog.at_level(logging.WARNING), open_source(str(cut)) as source:
        source.preview_frames(8)
        counted = source.info.n_frames
        assert source.partial == f"truncated: {counted} of 30 frames readable"
        frames = []
        with pytest.raises(PartialSource, match=f"truncated: {counted} of 30 frames readable"):
            for frame in source:
                frames.append(frame)
    assert len(frames) == counted and 5 <= counted < 30
    lines = [m for m in _warnings(caplog) if "truncated" in m]
    assert len(lines) == 1, lines
    with open_source(str(whole)) as source:  # an intact file: a seek lands where it should
        source.preview_frames(8)
        assert source.info.n_frames == 30 and source.partial is None and len(list(source)) == 30

# -- 6. empty source --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_source_is_refused(spec):
    with pytest.raises(DataError, match="empty source"):
        open_source(spec)


@pytest.mark.parametrize("spec", ["igtl://host:99999", "igtl://host:abc"])
def test_bad_igtl_port_is_a_data_error(spec):
    with pytest.raises(DataError, match="igtl://host:port"):
        open_source(spec)


# -- 8. modality ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, problem", [
    ("CT_small.dcm", "modality CT"),
    ("MR_small.dcm", "single MR image"),
    ("SC_rgb_rle_2frame.dcm", "modality OT"),
])
def test_non_ultrasound_dicom_is_refused_unless_forced(caplog, name, problem):
    path = get_testdata_file(name)
    with pytest.raises(DataError) as err:
        open_source(path)
    assert name in str(err.value) and problem in str(err.value) and "--force" in str(err.value)
    with caplog.at_level(logging.WARNING), open_source(path, force=True) as source:
        assert source.info.n_frames >= 1
    assert any(problem in m and "anyway" in m for m in _warnings(caplog))


def test_multi_frame_mr_is_cine_and_ultrasound_is_echo():
    with open_source(get_testdata_file("emri_small.dcm")) as source:
        assert source.info.modality == "cine"
    with open_source(YBR) as source:
        assert source.info.modality == "echo"



def _relabelled(tmp_path: Path, base: str, modality: str, name: str) -> Path:
    ds = pydicom.dcmread(base)
    ds.Modality = modality
    path = tmp_path / name
    ds.save_as(path)
    return path


def test_ultrasound_relabelled_mr_is_refused_naming_the_evidence_unless_forced(tmp_path, caplog):
    """Issue 19 fuzz finding: an echo loop whose Modality says MR went through the cine models silently."""
    path = _relabelled(tmp_path, YBR, "MR", "relabelled.dcm")
    with pytest.raises(DataError) as err:
        open_source(str(path))
    text = str(err.value)
    assert "\n" not in text and "relabelled.dcm" in text and "declares modality MR" in text
    for evidence in ("Ultrasound Multi-frame Image Storage", "ultrasound region sequence", "YBR_FULL_422"):
        assert evidence in text
    assert "Modality (0008,0060) to US" in text and "--force" in text
    with caplog.at_level(logging.WARNING), open_source(str(path), force=True) as source:
        assert source.info.modality == "cine" and source.info.n_frames == 30  # as its tag says
    lines = [m for m in _warnings(caplog) if "declares modality MR" in m]
    assert len(lines) == 1 and "anyway (--force)" in lines[0]


def test_mr_relabelled_us_is_refused_naming_the_evidence(tmp_path):
    path = _relabelled(tmp_path, get_testdata_file("emri_small.dcm"), "US", "mr_as_us.dcm")
    with pytest.raises(DataError, match=r"mr_as_us.dcm: declares modality US but its content is MR: "
                                        r"SOP class Enhanced MR Image Storage"):
        open_source(str(path))


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "color3d_jpeg_baseline.dcm", "US1_UNCR.dcm",
                                  "emri_small.dcm"])
def test_files_whose_content_fits_their_modality_open_without_a_word(name, caplog):
    from app.data.loaders.dicom_read import modality_contradiction

    ds = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)
    assert modality_contradiction(ds, ds.Modality) is None
    with caplog.at_level(logging.WARNING), open_source(get_testdata_file(name)) as source:
        assert source.info.modality in ("echo", "cine")
    assert not [m for m in _warnings(caplog) if "declares modality" in m]

# -- 7. OpenIGTLink servers that misbehave ------------------------------------------------------------
class _OneShotServer:
    """A loopback TCP server for one client: runs ``behaviour(conn)`` then closes; stops by itself."""

    def __init__(self, behaviour):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self._listener.settimeout(10.0)
        self.port = self._listener.getsockname()[1]
        self._behaviour = behaviour
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        finally:
            self._listener.close()
        with conn:
            self._behaviour(conn)


def _junk(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + bytes(range(256)))
    conn.settimeout(3.0)
    try:
        conn.recv(1)  # keep the connection open until the client hangs up (bounded)
    except OSError:
        pass


def _hang_up(conn: socket.socket) -> None:
    return None


def _one_image_then_hang_up(conn: socket.socket) -> None:
    import pyigtl

    conn.sendall(pyigtl.ImageMessage(np.full((1, 20, 30), 7, np.uint8), device_name="Image").pack())


def test_igtl_server_sending_junk_is_a_bad_header(capfd):
    server = _OneShotServer(_junk)
    with open_source(f"igtl://127.0.0.1:{server.port}", stall_timeout=5.0) as source:
        with pytest.raises(DataError, match="bad OpenIGTLink header") as err:
            list(source)
    assert f"igtl://127.0.0.1:{server.port}" in str(err.value) and "\n" not in str(err.value)
    server.thread.join(5.0)
    assert "Traceback" not in "".join(capfd.readouterr())


def test_igtl_server_closing_the_connection_is_named():
    server = _OneShotServer(_hang_up)
    with open_source(f"igtl://127.0.0.1:{server.port}", stall_timeout=5.0) as source:
        with pytest.raises(DataError, match="the server closed the connection"):
            list(source)
    server.thread.join(5.0)


def test_igtl_frames_before_the_server_hangs_up_are_delivered():
    server = _OneShotServer(_one_image_then_hang_up)
    frames = []
    with open_source(f"igtl://127.0.0.1:{server.port}", stall_timeout=5.0) as source:
        with pytest.raises(DataError, match="the server closed the connection"):
            for frame in source:
                frames.append(frame)
    assert len(frames) == 1 and frames[0].image.shape == (20, 30) and frames[0].image[0, 0] == 7
    server.thread.join(5.0)


def test_truncated_dicom_with_a_mask_beside_keeps_the_readable_frames_ground_truth(tmp_path):
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    path = write_echo_dicom(render_echo_case(0, 0, n_frames=8, size=64), tmp_path / "echo.dcm", 1, deflate=False)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])
    with open_source(str(path)) as source:
        n = source.info.n_frames
        assert 4 <= n < 8 and source.info.has_ground_truth
        frames = []
        with pytest.raises(PartialSource, match=f"truncated: {n} of 8 frames readable"):
            for frame in source:
                frames.append(frame)
    assert len(frames) == n and all(f.ground_truth is not None for f in frames)


def test_truncated_deflated_dicom_is_one_clear_error(tmp_path):
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    path = write_echo_dicom(render_echo_case(0, 0, n_frames=4, size=64), tmp_path / "echo.dcm", 1)
    (tmp_path / "echo_mask.npz").unlink()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(DataError, match="echo.dcm") as err:
        open_source(str(path))
    assert "\n" not in str(err.value)
