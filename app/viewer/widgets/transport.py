"""Playback controls: play/pause, step, loop, speed, position and (cine) slice."""

from __future__ import annotations

import math

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QWidget

from app.viewer.state import SPEEDS, ViewerState


def speed_label(speed: float) -> str:
    return "max" if not math.isfinite(speed) else f"{speed:g}x"


class TransportBar(QWidget):
    """Emits what the user asks for; the state (speed, loop, slice) is written straight to ``state``.

    Signals:
        play_toggled(), step_requested(), seek_requested(int).
    """

    play_toggled = pyqtSignal()
    step_requested = pyqtSignal()
    seek_requested = pyqtSignal(int)

    def __init__(self, state: ViewerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.play = QPushButton("Play")
        self.play.setObjectName("playButton")
        self.play.clicked.connect(self.play_toggled)
        self.step = QPushButton("Step")
        self.step.clicked.connect(self.step_requested)
        self.loop = QCheckBox("Loop")
        self.loop.setChecked(state.loop)
        self.loop.toggled.connect(state.set_loop)
        self.speed = QComboBox()
        for s in SPEEDS:
            self.speed.addItem(speed_label(s), s)
        self.speed.setToolTip("playback speed (max: every frame, as fast as the pipeline takes them)")
        self._select_speed(state.speed)
        self.speed.currentIndexChanged.connect(lambda i: state.set_speed(self.speed.itemData(i)))
        self.position = QSlider(Qt.Orientation.Horizontal)
        self.position.setEnabled(False)
        self.position.sliderReleased.connect(lambda: self.seek_requested.emit(self.position.value()))
        self.frame_label = QLabel("frame -")
        self.frame_label.setMinimumWidth(110)
        self.slice_label = QLabel("slice")
        self.slice = QSpinBox()
        self.slice.setEnabled(False)
        self.slice.valueChanged.connect(state.set_slice)
        state.loop_changed.connect(self.loop.setChecked)
        state.speed_changed.connect(self._select_speed)
        state.slice_changed.connect(self.slice.setValue)
        row = QHBoxLayout(self)
        for w in (self.play, self.step, self.loop, QLabel("speed"), self.speed):
            row.addWidget(w)
        row.addWidget(self.position, 1)
        for w in (self.frame_label, self.slice_label, self.slice):
            row.addWidget(w)

    def _select_speed(self, speed: float) -> None:
        for i in range(self.speed.count()):
            if self.speed.itemData(i) == speed:
                self.speed.setCurrentIndex(i)
                return

    def configure(self, info) -> None:
        """Adapt to a source: seekable recordings get the position slider, cine gets slices."""
        recording = info.n_frames is not None
        self.position.setEnabled(recording)
        self.position.setRange(0, max(0, (info.n_frames or 1) - 1))
        self.speed.setEnabled(info.frame_rate is not None)
        self.step.setEnabled(recording)
        self.loop.setEnabled(recording)
        self.slice.setEnabled(info.n_slices > 1)
        self.slice.setRange(0, max(0, info.n_slices - 1))
        self.slice_label.setText(f"slice (of {info.n_slices})")

    def show_position(self, index: int, n_frames: int | None) -> None:
        if not self.position.isSliderDown():
            self.position.setValue(index)
        self.frame_label.setText(f"frame {index + 1}" + (f" / {n_frames}" if n_frames else ""))

    def show_paused(self, paused: bool) -> None:
        self.play.setText("Play" if paused else "Pause")
