"""The viewer's state, observable and free of widgets (napari-style model/view split).

Widgets read and write it; the session controller reacts to it; settings persist it. It holds
values only: no engine objects, no threads.
"""

from __future__ import annotations

import math
from dataclasses import replace

from PyQt6.QtCore import QObject, pyqtSignal

from app.engine.overlay import OverlayStyle
from app.viewer.quality import QualityThresholds

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, math.inf)  # inf: "max", as fast as the pipeline takes frames
ECHO_MODE_CHOICES = ("auto", "contrast", "bmode")  # the Models panel's echo mode override


class ViewerState(QObject):
    """What the user has chosen. Every setter emits its signal only when the value changes.

    Signals:
        overlay_changed(OverlayStyle), thresholds_changed(QualityThresholds),
        speed_changed(float), loop_changed(bool), slice_changed(int), modality_changed(str),
        model_choice_changed(str, str): choice key (``choice_key``: the modality, ``echo-bmode`` for
            B-mode echo), model id (the user's pick for it),
        echo_mode_choice_changed(str): ``auto`` (detect per recording), ``contrast`` or ``bmode``.
    """

    overlay_changed = pyqtSignal(object)
    thresholds_changed = pyqtSignal(object)
    speed_changed = pyqtSignal(float)
    loop_changed = pyqtSignal(bool)
    slice_changed = pyqtSignal(int)
    modality_changed = pyqtSignal(str)
    model_choice_changed = pyqtSignal(str, str)
    echo_mode_choice_changed = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._overlay = OverlayStyle()
        self._thresholds = QualityThresholds()
        self._speed = 1.0
        self._loop = True
        self._slice = 0
        self._modality = "echo"
        self._model_choice: dict[str, str] = {}
        self._echo_mode_choice = "auto"

    # overlay -------------------------------------------------------------------------------
    @property
    def overlay(self) -> OverlayStyle:
        return self._overlay

    def set_overlay(self, style: OverlayStyle) -> None:
        if style != self._overlay:
            self._overlay = style
            self.overlay_changed.emit(style)

    def set_opacity(self, opacity: float) -> None:
        self.set_overlay(replace(self._overlay, opacity=min(1.0, max(0.0, float(opacity)))))

    def set_overlay_mode(self, mode: str) -> None:
        self.set_overlay(replace(self._overlay, mode=mode))

    def set_class_color(self, label: int, rgb: tuple[int, int, int]) -> None:
        colors = dict(self._overlay.colors)
        colors[int(label)] = tuple(int(c) for c in rgb)
        self.set_overlay(replace(self._overlay, colors=colors))

    # quality -------------------------------------------------------------------------------
    @property
    def thresholds(self) -> QualityThresholds:
        return self._thresholds

    def set_thresholds(self, thresholds: QualityThresholds) -> None:
        if thresholds != self._thresholds:
            self._thresholds = thresholds
            self.thresholds_changed.emit(thresholds)

    # playback ------------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if speed != self._speed:
            self._speed = float(speed)
            self.speed_changed.emit(self._speed)

    @property
    def loop(self) -> bool:
        return self._loop

    def set_loop(self, loop: bool) -> None:
        if bool(loop) != self._loop:
            self._loop = bool(loop)
            self.loop_changed.emit(self._loop)

    @property
    def slice_index(self) -> int:
        return self._slice

    def set_slice(self, z: int) -> None:
        if int(z) != self._slice:
            self._slice = int(z)
            self.slice_changed.emit(self._slice)

    # models --------------------------------------------------------------------------------
    @property
    def modality(self) -> str:
        return self._modality

    def set_modality(self, modality: str) -> None:
        if modality != self._modality:
            self._modality = modality
            self.modality_changed.emit(modality)

    def model_choice(self, modality: str) -> str | None:
        return self._model_choice.get(modality)

    def model_choices(self) -> dict[str, str]:
        return dict(self._model_choice)

    def set_model_choice(self, modality: str, model_id: str) -> None:
        if self._model_choice.get(modality) != model_id:
            self._model_choice[modality] = model_id
            self.model_choice_changed.emit(modality, model_id)

    # echo mode --------------------------------------------------------------------------------
    @property
    def echo_mode_choice(self) -> str:
        """``auto`` (each recording's detected mode), or the user's ``contrast`` / ``bmode`` override."""
        return self._echo_mode_choice

    def set_echo_mode_choice(self, choice: str) -> None:
        if choice not in ECHO_MODE_CHOICES:
            raise ValueError(f"echo mode must be one of {ECHO_MODE_CHOICES}, got {choice!r}")
        if choice != self._echo_mode_choice:
            self._echo_mode_choice = choice
            self.echo_mode_choice_changed.emit(choice)


def choice_key(modality: str, echo_mode: str | None = None) -> str:
    """Where the user's model pick is kept: per modality, and for echo per echo mode (``echo`` holds the
    contrast pick, as before there were B-mode models; ``echo-bmode`` the B-mode one)."""
    return "echo-bmode" if modality == "echo" and echo_mode == "bmode" else modality
