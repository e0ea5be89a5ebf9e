"""Latency and throughput at a glance: numbers, two sparklines with their targets, the stages."""

from __future__ import annotations

import math
from collections import deque

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PyQt6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from app.realtime import REALTIME

# The targets drawn and coloured here are the one real-time rule's (``app.realtime``).
LATENCY_TARGET_MS = REALTIME.p95_ms
FPS_TARGET = REALTIME.fps


class Sparkline(QWidget):
    """A rolling line of the last ``capacity`` values with one dashed target line.

    Args:
        target: Where the dashed line goes (same unit as the values).
        higher_is_better: Colours the line green when on the good side of ``target``.
        y_max: Initial top of the scale (grows to fit the values).
    """

    def __init__(self, target: float, higher_is_better: bool, y_max: float, label: str,
                 capacity: int = 300, parent: QWidget | None = None):
        super().__init__(parent)
        self.target, self.higher_is_better, self.base_max, self.label = target, higher_is_better, y_max, label
        self.values: deque[float] = deque(maxlen=capacity)
        self.setFixedHeight(48)

    def extend(self, values) -> None:
        added = False
        for v in values:
            if v is not None and math.isfinite(v):
                self.values.append(float(v))
                added = True
        if added:
            self.update()

    def clear(self) -> None:
        self.values.clear()
        self.update()

    def _good(self, v: float) -> bool:
        return v >= self.target if self.higher_is_better else v <= self.target

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        p.fillRect(r, QColor(22, 22, 26))
        top = max(self.base_max, self.target * 1.5, max(self.values, default=0.0) * 1.1)

        def y(v: float) -> float:
            return r.bottom() - (min(v, top) / top) * r.height()

        pen = QPen(QColor(200, 200, 200), 1, Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.drawLine(QPointF(r.left(), y(self.target)), QPointF(r.right(), y(self.target)))
        p.setFont(QFont(self.font().family(), 7))
        p.drawText(QRectF(r.left() + 2, y(self.target) - 12, r.width() - 4, 12),
                   Qt.AlignmentFlag.AlignRight, f"{self.target:g}")
        p.drawText(r.adjusted(3, 1, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, self.label)
        n = len(self.values)
        if n >= 2:
            step = r.width() / (self.values.maxlen - 1)
            x0 = r.right() - (n - 1) * step
            points = QPolygonF([QPointF(x0 + i * step, y(v)) for i, v in enumerate(self.values)])
            last = self.values[-1]
            p.setPen(QPen(QColor(60, 200, 110) if self._good(last) else QColor(235, 80, 60), 1.4))
            p.drawPolyline(points)
        p.end()


def _ms(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f}"


class LatencyPanel(QWidget):
    """Current latency and FPS, their sparklines, the stage breakdown, drops and misses."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        big = QFont(self.font())
        big.setPointSize(16)
        big.setBold(True)
        self.latency = QLabel("- ms")
        self.fps = QLabel("- FPS")
        for label in (self.latency, self.fps):
            label.setFont(big)
        self.percentiles = QLabel("p50 - / p95 - / max - ms")
        self.stages = QLabel("preprocess - | segment - | QC - | overlay - ms")
        self.stages.setWordWrap(True)
        self.counters = QLabel("dropped 0 | deadline misses 0 | errors 0")
        self.mode = QLabel("max speed: every frame is processed and waits for the previous one, "
                           "so latency includes queueing (throughput test)")
        self.mode.setWordWrap(True)
        self.mode.setStyleSheet("color: #e9b44c;")
        self.mode.hide()
        self.display = QLabel("on screen: -")
        self.display.setWordWrap(True)
        self.latency_line = Sparkline(LATENCY_TARGET_MS, False, 80.0, "latency ms")
        self.fps_line = Sparkline(FPS_TARGET, True, 40.0, "FPS", capacity=120)  # 4 samples/s: 30 s
        grid = QGridLayout()
        grid.addWidget(self.latency, 0, 0)
        grid.addWidget(self.fps, 0, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addWidget(self.mode)
        lay.addWidget(self.latency_line)
        lay.addWidget(self.fps_line)
        for w in (self.percentiles, self.stages, self.counters, self.display):
            w.setStyleSheet("color: #bbb;")
            lay.addWidget(w)

    def set_source_rate(self, rate: float | None, unpaced: bool = False) -> None:
        """The rate frames arrive at (None: unknown or unpaced). A pipeline that keeps up with a
        source slower than ``FPS_TARGET`` is not shown as failing. ``unpaced``: replay at "max" speed, where
        every frame waits for the previous one, so latency includes queueing (a throughput test)."""
        self.source_rate = rate
        self.mode.setVisible(unpaced)

    source_rate: float | None = None

    def fps_ok(self, fps: float) -> bool:
        target = FPS_TARGET if self.source_rate is None else min(FPS_TARGET, 0.95 * self.source_rate)
        return fps >= target

    def add_frames(self, latencies_ms) -> None:
        """Per-frame end-to-end latencies processed since the last call (oldest first)."""
        values = [v for v in latencies_ms if v is not None]
        self.latency_line.extend(values)
        if values:
            last = values[-1]
            self.latency.setText(f"{last:.1f} ms")
            self.latency.setStyleSheet("color: #3c6;" if last <= LATENCY_TARGET_MS else "color: #e55;")

    def show_stats(self, stats) -> None:
        """A ``PipelineStats`` snapshot."""
        self.fps.setText(f"{stats.fps:.1f} FPS")
        self.fps.setStyleSheet("color: #3c6;" if self.fps_ok(stats.fps) else "color: #e55;")
        self.fps_line.extend([stats.fps])
        lat = stats.latency_ms
        self.percentiles.setText(f"p50 {_ms(lat.get('p50'))} / p95 {_ms(lat.get('p95'))} / "
                                 f"max {_ms(lat.get('max'))} ms")
        st = stats.stages_ms
        self.stages.setText(f"queue {_ms(st.get('queue'))} | preprocess {_ms(st.get('preprocess'))} | "
                            f"segment {_ms(st.get('segment'))} | QC {_ms(st.get('qc'))} | overlay {_ms(st.get('overlay'))} ms")
        self.counters.setText(f"dropped {stats.dropped} | deadline misses {stats.deadline_misses} | "
                              f"errors {stats.errors}")

    def show_display(self, shown_fps: float, painted_ms: float | None, ui_lag_p95: float | None) -> None:
        self.display.setText(f"on screen: {shown_fps:.0f} FPS, arrival->painted {_ms(painted_ms)} ms, "
                             f"UI lag p95 {_ms(ui_lag_p95)} ms")

    def clear(self) -> None:
        self.latency_line.clear()
        self.fps_line.clear()
        self.latency.setText("- ms")
        self.fps.setText("- FPS")
