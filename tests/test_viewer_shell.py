import pytest

pytestmark = pytest.mark.gui


def test_main_window_opens_offscreen(qtbot) -> None:
    from app.viewer.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert "cardiac-rt" in win.windowTitle()
