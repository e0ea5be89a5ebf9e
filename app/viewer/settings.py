"""Persisting the viewer's choices between runs with ``QSettings``.

Keys are flat and typed on read, so a settings file edited by hand (or written by an older
version) never crashes the viewer: a value that does not parse falls back to the default.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from PyQt6.QtCore import QByteArray, QSettings

from app.engine.overlay import OverlayStyle
from app.viewer.quality import QualityThresholds
from app.viewer.state import ViewerState

log = logging.getLogger(__name__)


def default_settings() -> QSettings:
    """The user's settings (``cardiac-rt/viewer``, platform-native location)."""
    return QSettings("cardiac-rt", "viewer")


def settings_at(path: Path | str) -> QSettings:
    """Settings in an INI file (tests, portable installs)."""
    return QSettings(str(path), QSettings.Format.IniFormat)


def _float(s: QSettings, key: str, default: float) -> float:
    try:
        return float(s.value(key, default))
    except (TypeError, ValueError):
        return default


def _int(s: QSettings, key: str, default: int) -> int:
    try:
        return int(s.value(key, default))
    except (TypeError, ValueError):
        return default


def _bool(s: QSettings, key: str, default: bool) -> bool:
    value = s.value(key, default)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


class ViewerSettings:
    """Loads a ``ViewerState`` from ``QSettings`` and saves it back.

    Args:
        qsettings: Where to read and write (``default_settings()`` or ``settings_at(path)``).
    """

    def __init__(self, qsettings: QSettings | None = None):
        self.qs = qsettings if qsettings is not None else default_settings()

    def load_into(self, state: ViewerState) -> None:
        s = self.qs
        base = OverlayStyle()
        colors = dict(base.colors)
        try:
            stored = json.loads(str(s.value("overlay/colors", "{}")))
            colors.update({int(k): tuple(int(c) for c in v) for k, v in stored.items()})
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring unreadable overlay colours in %s", s.fileName())
        try:
            state.set_overlay(OverlayStyle(opacity=_float(s, "overlay/opacity", base.opacity),
                                           mode=str(s.value("overlay/mode", base.mode)), colors=colors))
        except ValueError as exc:
            log.warning("ignoring overlay settings in %s: %s", s.fileName(), exc)
        t = QualityThresholds()
        try:
            state.set_thresholds(QualityThresholds(
                good=_float(s, "quality/good", t.good), fair=_float(s, "quality/fair", t.fair),
                alert_frames=_int(s, "quality/alert_frames", t.alert_frames),
                clear_frames=_int(s, "quality/clear_frames", t.clear_frames)))
        except ValueError as exc:
            log.warning("ignoring quality thresholds in %s: %s", s.fileName(), exc)
        speed = _float(s, "playback/speed", 1.0)
        state.set_speed(speed if 0 < speed < math.inf else 1.0)
        state.set_loop(_bool(s, "playback/loop", True))
        state.set_modality(str(s.value("models/modality", "echo")))
        for modality in ("echo", "echo-bmode", "cine"):  # state.choice_key: echo-bmode is B-mode echo's pick
            model_id = s.value(f"models/{modality}")
            if model_id:
                state.set_model_choice(modality, str(model_id))

    def save_from(self, state: ViewerState) -> None:
        s = self.qs
        s.setValue("overlay/opacity", float(state.overlay.opacity))
        s.setValue("overlay/mode", state.overlay.mode)
        s.setValue("overlay/colors", json.dumps({str(k): list(v) for k, v in state.overlay.colors.items()}))
        th = state.thresholds
        s.setValue("quality/good", th.good)
        s.setValue("quality/fair", th.fair)
        s.setValue("quality/alert_frames", th.alert_frames)
        s.setValue("quality/clear_frames", th.clear_frames)
        if math.isfinite(state.speed):  # "max" is for validation runs; a new session starts at a real speed
            s.setValue("playback/speed", state.speed)
        s.setValue("playback/loop", state.loop)
        s.setValue("models/modality", state.modality)
        for modality, model_id in state.model_choices().items():
            s.setValue(f"models/{modality}", model_id)
        s.sync()

    # things that are not viewer state --------------------------------------------------------
    def recording_root(self) -> Path:
        default = Path.home() / "cardiac-rt-sessions"
        return Path(str(self.qs.value("recording/root", str(default))))

    def set_recording_root(self, path: Path | str) -> None:
        self.qs.setValue("recording/root", str(path))

    def geometry(self) -> QByteArray | None:
        value = self.qs.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, geometry: QByteArray) -> None:
        self.qs.setValue("window/geometry", geometry)

    def last_dir(self) -> str:
        return str(self.qs.value("files/last_dir", str(Path.home())))

    def set_last_dir(self, path: str) -> None:
        self.qs.setValue("files/last_dir", path)
