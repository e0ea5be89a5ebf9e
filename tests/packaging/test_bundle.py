"""The standalone scanner bundle: builds, and the bundled executable works with nothing else.

Builds with packaging/build.sh (PyInstaller one-folder + wheel + sdist) into a temporary folder, then
runs the bundled executable: ``--help``, a headless replay of the shipped demo recording that writes a
valid report, replays of the inputs whose decoders the bundle must carry (video through OpenCV's
FFmpeg: MJPG AVI and MPEG-4 MP4; JPEG-compressed DICOM through Pillow), and the viewer (offscreen) up
to its first painted overlay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The build's dist/ folder; ``CARDIAC_RT_BUNDLE_DIST=DIR`` tests one packaging/build.sh already made."""
    prebuilt = os.environ.get("CARDIAC_RT_BUNDLE_DIST")
    if prebuilt:
        return Path(prebuilt)
    dist = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, DIST=str(dist))
    out = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh"), sys.executable],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1100)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return dist


def _clean_env() -> dict[str, str]:
    """No venv, no PYTHONPATH: the bundle must not lean on this interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = "/usr/bin:/bin"
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def test_bundle_help_and_wheel(bundle: Path) -> None:
    exe = bundle / "cardiac-rt" / "cardiac-rt"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120, env=_clean_env())
    assert out.returncode == 0, out.stderr
    assert "replay" in out.stdout and "view" in out.stdout
    wheels = list(bundle.glob("cardiac_rt-*.whl"))
    assert len(wheels) == 1 and list(bundle.glob("cardiac_rt-*.tar.gz"))
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "app/cli.py" in names and any(n.endswith(".onnx") for n in names)
    # the bundle carries no PyTorch and no search code
    internal = bundle / "cardiac-rt" / "_internal"
    assert not (internal / "torch").exists()
    assert any((internal / "models").glob("*.onnx"))


def test_bundle_replays_the_demo_headless(bundle: Path, tmp_path: Path) -> None:
    exe = bundle / "cardiac-rt" / "cardiac-rt"
    demo = ROOT / "app" / "assets" / "demo" / "echo_contrast_a4c.dcm"
    report = tmp_path / "report.json"
    out = subprocess.run([str(exe), "replay", str(demo), "--report", str(report), "--fast"],
                         capture_output=True, text=True, timeout=600, env=_clean_env())
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["frames"] > 0 and data["processed"] == data["frames"]
    for key in ("p50", "p95", "p99", "max"):
        assert data["latency_ms"][key] > 0
    assert 0.0 <= data["dice_mean"] <= 1.0 and "qc_mae" in data


def _write_video(path: Path, fourcc: str, n: int = 12) -> Path:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (96, 80))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc}"
    yy, xx = np.mgrid[:80, :96]
    for i in range(n):
        disc = ((yy - 40) ** 2 + (xx - 48) ** 2 < (12 + i) ** 2).astype(np.uint8) * 200
        writer.write(np.dstack([disc, disc, disc]))
    writer.release()
    return path


def _jpeg_dicom() -> Path:
    import pydicom

    path = Path(pydicom.examples.get_path("ybr_color"))  # US, 30 frames, JPEG baseline (YBR_FULL_422)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    return path


@pytest.mark.parametrize("kind", ["avi-mjpg", "mp4-mpeg4", "dicom-jpeg"])
def test_bundle_decodes_video_and_jpeg_dicom(bundle: Path, tmp_path: Path, kind: str) -> None:
    """What trimming the bundle must not lose: FFmpeg's demuxers and decoders, and Pillow's JPEG."""
    exe = bundle / "cardiac-rt" / "cardiac-rt"
    source = {"avi-mjpg": lambda: _write_video(tmp_path / "loop.avi", "MJPG"),
              "mp4-mpeg4": lambda: _write_video(tmp_path / "loop.mp4", "mp4v"),
              "dicom-jpeg": _jpeg_dicom}[kind]()
    report = tmp_path / "report.json"
    plot, masks = tmp_path / "cdf.png", tmp_path / "masks.nii.gz"  # Pillow's PNG and fonts, nibabel
    out = subprocess.run([str(exe), "replay", str(source), "--report", str(report), "--fast", "--max-frames", "10",
                          "--plot", str(plot), "--masks", str(masks)],
                         capture_output=True, text=True, timeout=300, env=_clean_env())
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["source"]["modality"] == "echo" and data["processed"] == 10 and data["errors"] == 0
    assert "source_error" not in data and plot.stat().st_size > 1000 and masks.stat().st_size > 100


def test_bundle_viewer_paints_a_first_overlay(bundle: Path, tmp_path: Path) -> None:
    exe = bundle / "cardiac-rt" / "cardiac-rt"
    ui = tmp_path / "ui.json"
    out = subprocess.run([str(exe), "view", "--quit-after-first-frame", "--quit-after", "120",
                          "--settings", str(tmp_path / "s.ini"), "--ui-report", str(ui)],
                         capture_output=True, text=True, timeout=300, env=_clean_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(ui.read_text())["first_frame_painted_unix"] is not None
