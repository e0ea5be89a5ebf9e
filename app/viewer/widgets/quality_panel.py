"""Predicted Dice, large, with a traffic light; and the banner that asks for a better view."""

from __future__ import annotations

import math

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QPainter
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.viewer.quality import ALERT_TEXT, Quality

LIGHT_COLORS = {Quality.POOR: QColor(220, 50, 47), Quality.FAIR: QColor(240, 170, 30),
                Quality.GOOD: QColor(40, 190, 80)}
OFF = QColor(60, 60, 64)


class TrafficLight(QWidget):
    """Three lamps (red, amber, green); the one for ``level`` is lit."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.level = Quality.UNKNOWN
        self.setFixedSize(34, 96)

    def set_level(self, level: Quality) -> None:
        if level is not self.level:
            self.level = level
            self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(QColor(25, 25, 28))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(QRectF(self.rect()), 8, 8)
        d = self.width() - 10
        for i, level in enumerate((Quality.POOR, Quality.FAIR, Quality.GOOD)):
            p.setBrush(LIGHT_COLORS[level] if level is self.level else OFF)
            p.drawEllipse(QRectF(5, 4 + i * (d + 4), d, d))
        p.end()


class QualityPanel(QWidget):
    """Big predicted-Dice readout, the traffic light and (when known) the true Dice."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.light = TrafficLight()
        self.value = QLabel("-")
        self.value.setObjectName("predictedDice")
        font = QFont(self.font())
        font.setPointSize(40)
        font.setBold(True)
        self.value.setFont(font)
        self.caption = QLabel("predicted Dice (QC)")
        self.detail = QLabel("")
        self.detail.setStyleSheet("color: #888;")
        text = QVBoxLayout()
        text.addWidget(self.caption)
        text.addWidget(self.value)
        text.addWidget(self.detail)
        row = QHBoxLayout(self)
        row.addWidget(self.light)
        row.addLayout(text, 1)

    def show_quality(self, predicted: float | None, level: Quality, true_dice: float | None = None) -> None:
        if predicted is None or not math.isfinite(predicted):
            self.value.setText("-")
        else:
            self.value.setText(f"{predicted:.2f}")
        color = LIGHT_COLORS.get(level)
        self.value.setStyleSheet(f"color: {color.name()};" if color is not None else "color: #aaa;")
        self.light.set_level(level)
        self.detail.setText("" if true_dice is None else f"vs ground truth: {true_dice:.2f}")

    def show_no_qc(self, why: str = "no QC model") -> None:
        self.show_quality(None, Quality.UNKNOWN)
        self.detail.setText(why)


class AlertBanner(QLabel):
    """A strip across the top of the image; hidden until shown."""

    def __init__(self, style: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet(style)
        self.hide()

    def show_message(self, text: str) -> None:
        self.setText(text)
        self.show()


def quality_banner() -> AlertBanner:
    banner = AlertBanner("background: #d9342b; color: white; font-size: 18px; font-weight: bold; padding: 8px;")
    banner.setObjectName("qualityAlert")
    banner.default_text = ALERT_TEXT
    return banner


def error_banner() -> AlertBanner:
    banner = AlertBanner("background: #5a1d1d; color: #ffdede; padding: 6px;")
    banner.setObjectName("errorBanner")
    banner.setCursor(Qt.CursorShape.PointingHandCursor)
    banner.setToolTip("click to dismiss")
    banner.mousePressEvent = lambda event: banner.hide()
    return banner
