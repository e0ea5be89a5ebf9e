"""Contrast or B-mode echo in the viewer: the Models panel shows the mode, the override re-selects the pair,
the legend lists the running card's classes, and a missing B-mode model is said, not hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from viewer_fakes import FakeEngine, FakePipeline, FakePlayer

from app.engine.overlay import DEFAULT_COLORS
from app.viewer.main_window import MainWindow

pytestmark = pytest.mark.gui
TIMEOUT = 10_000  # ms; generous for a loaded 2-core CI machine


def _window(qtbot, tmp_path, settings, **engine_options) -> tuple[MainWindow, FakeEngine]:
    FakePlayer.instances.clear()
    FakePipeline.instances.clear()
    engine = FakeEngine(tmp_path / "models", detect_echo=True, **engine_options)
    win = MainWindow(engine=engine.port(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win, engine


def _open(qtbot, win, spec: str, model_id: str, timeout: int = TIMEOUT) -> None:
    """Open ``spec`` and wait until ``model_id`` runs on it."""
    win.monitor.start()
    win.open_source(spec)
    name = Path(spec).name if Path(spec).is_file() else spec
    qtbot.waitUntil(lambda: win.session.seg_card is not None and win.session.seg_card.id == model_id
                    and win.session.info is not None and win.session.info.name == name, timeout=timeout)


def test_detected_b_mode_runs_the_b_mode_pair_and_the_override_reselects(qtbot, tmp_path, settings) -> None:
    win, engine = _window(qtbot, tmp_path, settings, bmode_models=True)
    try:
        _open(qtbot, win, "bmode:40", "echo-bmode-seg")
        assert win.session.qc_card.id == "echo-bmode-qc"
        picker = win.model_picker
        assert picker.echo_row.isVisible() and picker.echo_choice.currentData() == "auto"
        assert picker.echo_label.text() == "B-mode echo (detected)"
        assert "fake detector" in picker.echo_label.toolTip()
        # the legend: every class of the running B-mode card, each in its overlay colour
        assert win.overlay_controls.legend_entries() == [("LV", DEFAULT_COLORS[1]), ("myocardium", DEFAULT_COLORS[2]),
                                                 ("LA", DEFAULT_COLORS[3])]
        assert not picker.echo_note.isVisible()

        # override: contrast -> the contrast pair, without reopening the recording
        opened = list(engine.opened)
        picker.echo_choice.setCurrentIndex(picker.echo_choice.findData("contrast"))
        assert win.state.echo_mode_choice == "contrast"
        qtbot.waitUntil(lambda: win.session.seg_card.id == "echo-searched", timeout=TIMEOUT)
        assert win.session.qc_card.id == "echo-qc" and engine.opened == opened
        assert picker.echo_label.text() == "contrast echo (chosen; detected B-mode echo)"
        assert win.overlay_controls.legend_entries() == [("myocardium", DEFAULT_COLORS[1])]
        assert isinstance(win.session.pipeline, FakePipeline) and win.session.pipeline.seg.id == "echo-searched"

        # back to auto: the detected B-mode pair again
        picker.echo_choice.setCurrentIndex(picker.echo_choice.findData("auto"))
        qtbot.waitUntil(lambda: win.session.seg_card.id == "echo-bmode-seg", timeout=TIMEOUT)
        assert [name for name, _ in win.overlay_controls.legend_entries()] == ["LV", "myocardium", "LA"]

        # a contrast recording next: its own pair, the B-mode pick stays remembered for B-mode
        _open(qtbot, win, "echo:30", "echo-searched")
        assert picker.echo_label.text() == "contrast echo (detected)"
        assert win.state.model_choice("echo") == "echo-searched"
        assert win.state.model_choice("echo-bmode") == "echo-bmode-seg"
    finally:
        win.close()


def test_without_a_b_mode_model_the_contrast_pair_runs_with_a_note(qtbot, tmp_path, settings) -> None:
    win, _ = _window(qtbot, tmp_path, settings)
    try:
        _open(qtbot, win, "bmode:40", "echo-searched")
        picker = win.model_picker
        qtbot.waitUntil(lambda: picker.echo_note.isVisible(), timeout=TIMEOUT)
        note = picker.echo_note.text()
        assert note.startswith("no B-mode echo model in models/ yet: running the contrast echo pair "
                               "echo-searched + echo-qc")
        assert picker.echo_label.text() == "B-mode echo (detected)"
        assert note in win.statusBar().currentMessage()
        assert win.session.echo_status().model_mode == "contrast"
        # the fallback is not remembered as the user's B-mode pick
        assert win.state.model_choice("echo-bmode") is None
    finally:
        win.close()


def test_cine_has_no_echo_mode_row(qtbot, tmp_path, settings) -> None:
    win, engine = _window(qtbot, tmp_path, settings)
    try:
        _open(qtbot, win, "cine:patient001", "cine-searched")
        assert not win.model_picker.echo_row.isVisible()
        assert engine.echo_asked == []  # detection is for echo only
    finally:
        win.close()


def test_real_engine_detects_b_mode_and_runs_the_b_mode_pair(qtbot, tmp_path, settings) -> None:
    """The real engine end to end: the detector on a B-mode phantom DICOM, a 4-class B-mode pair
    (tiny ONNX models) chosen by the real ``default_models``, its three classes in the legend."""
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom
    from app.viewer.engine_port import EnginePort
    from tests.app.engine.tiny_models import write_echo_models

    folder = tmp_path / "models"
    write_echo_models(folder, seg_id="tiny-echo-seg", qc_id="tiny-echo-qc")
    write_echo_models(folder, seg_id="tiny-bmode-seg", qc_id="tiny-bmode-qc", echo_mode="bmode")
    dicom = write_echo_dicom(render_echo_case(4, 1, n_frames=10, variant="bmode", quality=0.8),
                             tmp_path / "bmode.dcm", 1)
    win = MainWindow(engine=EnginePort.real(), settings=settings, models_dir=folder)
    qtbot.addWidget(win)
    win.show()
    try:
        _open(qtbot, win, str(dicom), "tiny-bmode-seg", timeout=30_000)
        qtbot.waitUntil(lambda: win.session.last_result is not None and win.session.last_result.mask is not None,
                        timeout=30_000)
        assert win.model_picker.echo_label.text() == "B-mode echo (detected)"
        assert "no contrast attributes" in win.model_picker.echo_label.toolTip()
        assert [name for name, _ in win.overlay_controls.legend_entries()] == ["LV", "myocardium", "LA"]
        win.model_picker.echo_choice.setCurrentIndex(win.model_picker.echo_choice.findData("contrast"))
        qtbot.waitUntil(lambda: win.session.seg_card.id == "tiny-echo-seg", timeout=30_000)
        assert [name for name, _ in win.overlay_controls.legend_entries()] == ["myocardium"]
    finally:
        win.close()
