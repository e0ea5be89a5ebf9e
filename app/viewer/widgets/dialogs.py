"""Small dialogs: an OpenIGTLink server, a capture device, the quality thresholds."""

from __future__ import annotations

from PyQt6.QtWidgets import (QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget)

from app.viewer.quality import QualityThresholds


def parse_host_port(text: str, default_port: int = 18944) -> tuple[str, int]:
    """``"host:port"`` or ``"host"`` -> (host, port). Raises ValueError with the reason."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port must be 1-65535, got {port!r}")
    return host, int(port)


def _dialog(parent: QWidget | None, title: str) -> tuple[QDialog, QFormLayout]:
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    form = QFormLayout(dialog)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    dialog.buttons = buttons
    return dialog, form


class IgtlDialog:
    """Asks for ``host:port`` of an OpenIGTLink server (18944 is the protocol's default port)."""

    def __init__(self, parent: QWidget | None = None, last: str = "localhost:18944"):
        self.dialog, form = _dialog(parent, "OpenIGTLink server")
        self.address = QLineEdit(last)
        form.addRow("host:port", self.address)
        form.addRow(self.dialog.buttons)

    def spec(self) -> str:
        host, port = parse_host_port(self.address.text())
        return f"igtl://{host}:{port}"


class CaptureDialog:
    """Asks for a capture device index (a frame grabber on the scanner's video out)."""

    def __init__(self, parent: QWidget | None = None, last: int = 0):
        self.dialog, form = _dialog(parent, "Capture device")
        self.index = QSpinBox()
        self.index.setRange(0, 15)
        self.index.setValue(last)
        form.addRow("device index", self.index)
        form.addRow(self.dialog.buttons)

    def spec(self) -> str:
        return f"camera:{self.index.value()}"


class ThresholdsDialog:
    """Edits ``QualityThresholds``."""

    def __init__(self, thresholds: QualityThresholds, parent: QWidget | None = None):
        self.dialog, form = _dialog(parent, "Quality thresholds")
        self.good = QDoubleSpinBox()
        self.fair = QDoubleSpinBox()
        for box, value in ((self.good, thresholds.good), (self.fair, thresholds.fair)):
            box.setRange(0.0, 1.0)
            box.setSingleStep(0.01)
            box.setDecimals(2)
            box.setValue(value)
        self.alert = QSpinBox()
        self.alert.setRange(1, 1000)
        self.alert.setValue(thresholds.alert_frames)
        self.clear = QSpinBox()
        self.clear.setRange(1, 1000)
        self.clear.setValue(thresholds.clear_frames)
        form.addRow("green at predicted Dice >=", self.good)
        form.addRow("amber at predicted Dice >=", self.fair)
        form.addRow("alert after red frames", self.alert)
        form.addRow("clear after non-red frames", self.clear)
        form.addRow(self.dialog.buttons)

    def thresholds(self) -> QualityThresholds:
        """The edited thresholds (ValueError when amber is above green)."""
        return QualityThresholds(good=self.good.value(), fair=self.fair.value(),
                                 alert_frames=self.alert.value(), clear_frames=self.clear.value())
