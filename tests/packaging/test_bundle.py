"""The standalone scanner bundle: builds, and the bundled executable works with nothing else.

Builds with packaging/build.sh (PyInstaller one-folder + wheel + sdist) into a temporary folder, then
runs the bundled executable: ``--help``, a headless replay of the shipped demo recording that writes a
valid report, and the viewer (offscreen) up to its first painted overlay.
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


def test_bundle_viewer_paints_a_first_overlay(bundle: Path, tmp_path: Path) -> None:
    exe = bundle / "cardiac-rt" / "cardiac-rt"
    ui = tmp_path / "ui.json"
    out = subprocess.run([str(exe), "view", "--quit-after-first-frame", "--quit-after", "120",
                          "--settings", str(tmp_path / "s.ini"), "--ui-report", str(ui)],
                         capture_output=True, text=True, timeout=300, env=_clean_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(ui.read_text())["first_frame_painted_unix"] is not None
