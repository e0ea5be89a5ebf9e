"""Starting the viewer: the QApplication, an exception hook that keeps the window alive, --quit-after."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import traceback
from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication

from app.viewer.platform_check import guard_qt_start
from app.viewer.recording import plain_json

log = logging.getLogger(__name__)


def install_excepthook(window) -> None:
    """An unexpected exception in a slot is logged and shown in the window instead of aborting Qt."""

    def hook(exc_type, exc, tb):
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        try:
            window.show_error(f"unexpected error: {exc_type.__name__}: {exc}")
        except Exception:  # the window itself may be half torn down
            pass

    sys.excepthook = hook


def dark_palette(app: QApplication) -> None:
    """A dim theme: scanner rooms are dark, and a bright window would dazzle next to the image."""
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor(30, 31, 34), QColor(40, 42, 46), QColor(225, 225, 228)
    for role, color in ((QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, window),
                        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(45, 110, 200)),
                        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))):
        pal.setColor(role, color)
    app.setPalette(pal)


def choose_model(window, model_id: str) -> None:
    """Make ``model_id`` the pick for its modality (the card says which); unknown ids are reported."""
    engine = window.engine
    try:
        cards = list(engine.list_models(None, window.session.models_dir)) if engine.list_models else []
    except Exception as exc:  # a broken models/ folder is shown, not raised
        window.show_error(f"models: {exc}")
        return
    card = next((c for c in cards if c.id == model_id and c.role == "seg"), None)
    if card is None:
        window.show_error(f"--model {model_id}: no segmentation model with that id in models/")
        return
    window.state.set_model_choice(card.modality, card.id)


def launch(args: argparse.Namespace) -> int:
    """Open the window on ``args.source`` (default: the shipped demo) and run the event loop."""
    from app.viewer.main_window import MainWindow
    from app.viewer.settings import ViewerSettings, settings_at

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Qt's fatal "could not load the platform plugin" becomes one line and exit 2 (see platform_check)
    app = QApplication.instance() or guard_qt_start(lambda: QApplication(sys.argv[:1]))
    app.setApplicationName("cardiac-rt")
    app.setOrganizationName("cardiac-rt")
    dark_palette(app)
    settings = ViewerSettings(settings_at(args.settings) if getattr(args, "settings", None) else None)
    window = MainWindow(settings=settings, models_dir=getattr(args, "models_dir", None))
    install_excepthook(window)
    if getattr(args, "fast", False):
        window.state.set_speed(math.inf)
    if getattr(args, "model", None):
        choose_model(window, args.model)
    window.show()
    window.start(getattr(args, "source", None))
    if getattr(args, "record", None):
        window.recording_root_override = Path(args.record)  # this run only; the setting is kept
        QTimer.singleShot(0, lambda: window.set_recording(True))
    if getattr(args, "quit_after_first_frame", False):
        window.first_frame_painted.connect(lambda: QTimer.singleShot(0, window.close))
    if args.quit_after is not None:
        def finish() -> None:
            if getattr(args, "screenshot", None):
                if window.grab().save(str(args.screenshot)):
                    log.info("screenshot saved to %s", args.screenshot)
                else:
                    log.error("%s: could not save the screenshot", args.screenshot)
            window.close()

        QTimer.singleShot(int(args.quit_after * 1000), finish)
    code = app.exec()
    report = getattr(window, "ui_report_at_close", None)
    if getattr(args, "ui_report", None) and report is not None:
        write_json(args.ui_report, report)
        lag = report["event_loop_delay_ms"]
        log.info("event-loop delay p50 %.2f / p95 %.2f / max %.2f ms over %d samples; wrote %s",
                 lag["p50"], lag["p95"], lag["max"], lag["samples"], args.ui_report)
    return code


def write_json(path: Path | str, data: dict) -> None:
    Path(path).write_text(json.dumps(plain_json(data), indent=2, default=float))
