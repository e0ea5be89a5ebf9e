"""Drive the real viewer in a real X11 window (run by test_real_window.py under Xvfb, QT_QPA_PLATFORM=xcb).

Usage: ``python real_window_driver.py OUT_DIR``. Opens the shipped demo through the shipped models,
clicks another model in the model table, opens the cine MR phantom from the File menu, and saves
what the X server shows of the window (``QScreen.grabWindow``) after each step as PNG. Writes
``OUT_DIR/result.json`` (platform, models, sources, screenshots, where the image is, class colours)
and exits 0; on a step that does not happen in time, prints which one and exits 3.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PyQt6.QtCore import QCoreApplication, QEventLoop, QPoint, Qt
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QApplication

from app.viewer.app import dark_palette
from app.viewer.platform_check import guard_qt_start

STEP_TIMEOUT_S = 25.0


def wait_until(condition, what: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
    """Run the event loop until ``condition()`` holds; exit 3 naming ``what`` when it does not in time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            print(f"real window: timed out after {timeout_s:.0f} s waiting for {what}", file=sys.stderr)
            sys.exit(3)
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def pump(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def masks_since(window, count: int) -> Callable[[], bool]:
    """A condition: ``count`` more frames with a segmentation mask have been shown from now on."""
    start = window.session.bridge.displayed

    def done() -> bool:
        result = window.session.last_result
        return window.session.bridge.displayed >= start + count and result is not None and result.mask is not None

    return done


def main_label(window) -> int:
    """The class that covers most of the newest mask (its overlay colour must be on screen)."""
    mask = np.asarray(window.session.last_result.mask)
    labels, counts = np.unique(mask[mask > 0], return_counts=True)
    return int(labels[np.argmax(counts)]) if labels.size else 0


def grab(window, path: Path) -> str:
    """Save what the X server shows of the window (not a re-render by Qt) as PNG."""
    pump(0.3)  # let the last paint reach the server
    screen = window.screen() or QGuiApplication.primaryScreen()
    if not screen.grabWindow(int(window.winId())).save(str(path)):
        print(f"real window: could not save {path}", file=sys.stderr)
        sys.exit(3)
    return str(path)


def click_model(window, model_id: str) -> None:
    """Click the model's row in the model table, as a user would."""
    picker = window.model_picker
    row = picker._ids.index(model_id)
    item = picker.table.item(row, 0)
    picker.table.scrollToItem(item)
    rect = picker.table.visualItemRect(item)
    QTest.mouseClick(picker.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(rect.center().x(), rect.center().y()))


def image_rect(window) -> list[int]:
    """Where the live image widget lies in the window, in device pixels: x, y, width, height."""
    top_left = window.image.mapTo(window, QPoint(0, 0))
    ratio = window.devicePixelRatio()
    return [round(v * ratio) for v in (top_left.x(), top_left.y(), window.image.width(), window.image.height())]


def main(out: Path) -> int:
    from app.viewer.engine_port import EnginePort
    from app.viewer.main_window import MainWindow
    from app.viewer.settings import ViewerSettings, settings_at

    app = guard_qt_start(lambda: QApplication(sys.argv[:1]))
    dark_palette(app)
    window = MainWindow(engine=EnginePort.real(), settings=ViewerSettings(settings_at(out / "viewer.ini")))
    window.resize(1280, 800)
    window.show()
    if not QTest.qWaitForWindowExposed(window, 10_000):
        print("real window: the window was never exposed by the X server", file=sys.stderr)
        return 3
    result: dict = {"platform": QGuiApplication.platformName(), "steps": []}

    window.start()  # the shipped demo through the shipped models
    wait_until(lambda: window.session.seg_card is not None, "the demo's model to load")
    wait_until(masks_since(window, 3), "three segmented demo frames")
    first = window.session.seg_card.id
    result["steps"].append({"step": "demo", "source": window.session.info.name, "model": first, "label": main_label(window),
                            "screenshot": grab(window, out / "1-demo.png")})

    other = next(i for i in window.model_picker._ids if i != first)
    click_model(window, other)
    wait_until(lambda: window.session.seg_card is not None and window.session.seg_card.id == other,
               f"the click on model {other} to switch the model")
    wait_until(masks_since(window, 3), f"three frames segmented by {other}")
    result["steps"].append({"step": "model", "source": window.session.info.name, "model": other, "label": main_label(window),
                            "screenshot": grab(window, out / "2-model.png")})

    action = next(a for a in window.menuBar().actions()[0].menu().actions() if a.text().startswith("Phantom cine"))
    action.trigger()
    wait_until(lambda: window.session.info is not None and window.session.info.modality == "cine",
               "the cine MR phantom to open")
    wait_until(lambda: window.session.seg_card is not None and window.session.seg_card.modality == "cine",
               "a cine model to load")
    wait_until(masks_since(window, 3), "three segmented cine frames")
    result["steps"].append({"step": "source", "source": window.session.info.name,
                            "model": window.session.seg_card.id, "label": main_label(window),
                            "screenshot": grab(window, out / "3-cine.png")})

    result["image_rect"] = image_rect(window)
    style = window.state.overlay
    result["overlay"] = {"opacity": style.opacity, "mode": style.mode,
                         "colors": {str(k): list(v) for k, v in style.colors.items()}}
    result["errors_shown"] = window.error_banner.isVisible()
    (out / "result.json").write_text(json.dumps(result, indent=2))
    window.close()
    pump(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
