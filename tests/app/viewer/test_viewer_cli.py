"""``python -m app view`` opens the window (offscreen here) and --quit-after closes it cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.gui


def test_main_window_opens_offscreen(qtbot, settings) -> None:
    from app.viewer.engine_port import EnginePort
    from app.viewer.main_window import MainWindow

    win = MainWindow(engine=EnginePort(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert "cardiac-rt" in win.windowTitle()


def test_python_m_app_opens_and_quits_after(tmp_path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    report = tmp_path / "ui.json"
    empty = tmp_path / "models"
    empty.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "app", "view", "--quit-after", "3", "--settings", str(tmp_path / "s.ini"),
         "--ui-report", str(report), "--record", str(tmp_path / "sessions"), "--models-dir", str(empty)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["event_loop_delay_ms"]["samples"] > 0
    assert (tmp_path / "s.ini").is_file()  # settings were written on close
    assert "sessions" not in (tmp_path / "s.ini").read_text()  # --record is for this run only
    sessions = list((tmp_path / "sessions").glob("session-*"))
    assert len(sessions) == 1
    meta = json.loads((sessions[0] / "session.json").read_text())
    assert meta["ended"] is not None and (sessions[0] / "frames.csv").is_file()
