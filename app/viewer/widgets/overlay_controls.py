"""Overlay controls: opacity, fill or contour, and the class colours (click a swatch to change it)."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (QButtonGroup, QColorDialog, QHBoxLayout, QLabel, QPushButton, QRadioButton, QSlider,
                             QVBoxLayout, QWidget)

from app.viewer.state import ViewerState


def display_name(name: str) -> str:
    """A class name as the legend shows it: short anatomical abbreviations in capitals (``lv`` -> ``LV``)."""
    return name.upper() if len(name) <= 3 else name


class OverlayControls(QWidget):
    """Binds to ``state.overlay`` both ways."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("opacitySlider")
        self.opacity.setRange(0, 100)
        self.fill = QRadioButton("fill")
        self.contour = QRadioButton("contour")
        group = QButtonGroup(self)
        group.addButton(self.fill)
        group.addButton(self.contour)
        self.legend = QHBoxLayout()
        self.legend.setSpacing(4)
        row = QHBoxLayout()
        row.addWidget(QLabel("opacity"))
        row.addWidget(self.opacity, 1)
        row.addWidget(self.fill)
        row.addWidget(self.contour)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addLayout(self.legend)
        self._classes: dict[int, str] = {}
        self._show(state.overlay)
        self.opacity.valueChanged.connect(lambda v: state.set_opacity(v / 100.0))
        self.fill.toggled.connect(lambda on: on and state.set_overlay_mode("fill"))
        self.contour.toggled.connect(lambda on: on and state.set_overlay_mode("contour"))
        state.overlay_changed.connect(self._show)

    def legend_entries(self) -> list[tuple[str, tuple[int, int, int]]]:
        """What the legend shows: each swatch's name and colour, left to right."""
        out = []
        for i in range(self.legend.count()):
            swatch = self.legend.itemAt(i).widget()
            if isinstance(swatch, QPushButton):
                out.append((swatch.text(), tuple(swatch.property("rgb"))))
        return out

    def set_classes(self, classes: dict[int, str]) -> None:
        """Class value -> name of the running model (background excluded from the legend)."""
        self._classes = {k: v for k, v in classes.items() if k != 0}
        self._show(self.state.overlay)

    def _show(self, style) -> None:
        self.opacity.blockSignals(True)
        self.opacity.setValue(round(style.opacity * 100))
        self.opacity.blockSignals(False)
        (self.fill if style.mode == "fill" else self.contour).setChecked(True)
        while self.legend.count():
            item = self.legend.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for label, name in sorted(self._classes.items()):
            rgb = style.colors.get(label, (128, 128, 128))
            swatch = QPushButton(display_name(name))
            swatch.setProperty("rgb", list(rgb))
            swatch.setToolTip(f"class {label}: click to change its colour")
            text = "black" if sum(rgb) > 380 else "white"
            swatch.setStyleSheet(f"background: rgb{tuple(rgb)}; color: {text}; padding: 2px 6px;")
            swatch.clicked.connect(lambda _=False, lab=label: self._pick_color(lab))
            self.legend.addWidget(swatch)
        self.legend.addStretch(1)

    def _pick_color(self, label: int) -> None:
        current = QColor(*self.state.overlay.colors.get(label, (128, 128, 128)))
        color = QColorDialog.getColor(current, self, f"Colour of {self._classes.get(label, label)}")
        if color.isValid():
            self.state.set_class_color(label, (color.red(), color.green(), color.blue()))
