"""Fixtures for the viewer tests: a temp settings file, the fake engine, a window on it."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import QSettings

from app.viewer.settings import ViewerSettings, settings_at
from viewer_fakes import FakeEngine, FakePipeline, FakePlayer


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory):
    """No test ever reads or writes the user's real settings."""
    root = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(root))
    yield


@pytest.fixture
def settings(tmp_path) -> ViewerSettings:
    s = ViewerSettings(settings_at(tmp_path / "viewer.ini"))
    s.set_recording_root(tmp_path / "sessions")
    return s


@pytest.fixture
def fake_engine(tmp_path) -> FakeEngine:
    FakePlayer.instances.clear()
    FakePipeline.instances.clear()
    return FakeEngine(tmp_path / "models")


@pytest.fixture
def window(qtbot, fake_engine, settings):
    from app.viewer.main_window import MainWindow

    win = MainWindow(engine=fake_engine.port(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()
