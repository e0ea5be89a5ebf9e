"""Small pieces: OpenIGTLink addresses, thresholds dialog, the exception hook that keeps the window up."""

from __future__ import annotations

import sys

import pytest

from app.viewer.quality import QualityThresholds
from app.viewer.widgets.dialogs import IgtlDialog, ThresholdsDialog, parse_host_port

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(("text", "expected"), [("scanner:18944", ("scanner", 18944)), ("10.0.0.5", ("10.0.0.5", 18944)),
                                                (" host:1 ", ("host", 1))])
def test_parse_host_port(text, expected) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["", ":18944", "host:0", "host:70000", "host:abc"])
def test_parse_host_port_rejects(text) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)


def test_igtl_dialog_builds_the_source_spec(qtbot) -> None:
    d = IgtlDialog(last="probe-pc:18945")
    qtbot.addWidget(d.dialog)
    assert d.spec() == "igtl://probe-pc:18945"


def test_thresholds_dialog_round_trip(qtbot) -> None:
    t = QualityThresholds(good=0.85, fair=0.6, alert_frames=9, clear_frames=2)
    d = ThresholdsDialog(t)
    qtbot.addWidget(d.dialog)
    assert d.thresholds() == t
    d.fair.setValue(0.9)  # above green
    with pytest.raises(ValueError):
        d.thresholds()


def test_unexpected_exception_is_shown_not_fatal(qtbot, window) -> None:
    from app.viewer.app import install_excepthook

    saved = sys.excepthook
    try:
        install_excepthook(window)
        try:
            raise RuntimeError("slot blew up")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = saved
    assert window.error_banner.isVisible() and "slot blew up" in window.error_banner.text()
