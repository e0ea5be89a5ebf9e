"""The window driven by a fake engine: frames, sources, models, quality alert, recording, errors."""

from __future__ import annotations

import csv
import json
import math

import pytest
from viewer_fakes import FakeEngine, FakePlayer, Script

from app.viewer.main_window import MainWindow
from app.viewer.quality import QualityThresholds

pytestmark = pytest.mark.gui
TIMEOUT = 10_000  # ms; generous for a loaded 2-core CI machine


def _wait_frames(qtbot, win, n: int = 3) -> None:
    start = win.session.bridge.displayed
    qtbot.waitUntil(lambda: win.session.bridge.displayed >= start + n, timeout=TIMEOUT)


def test_opens_on_the_demo_and_widgets_follow_the_pipeline(qtbot, window, fake_engine) -> None:
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.start()
    assert fake_engine.opened == ["echo:60"]
    _wait_frames(qtbot, window, 5)
    qtbot.waitUntil(lambda: window.image.result is not None and "painted" in window.image.result.timestamps,
                    timeout=TIMEOUT)
    assert window.session.seg_card.id == "echo-searched" and window.session.qc_card.id == "echo-qc"
    assert window.quality_panel.value.text() == "0.90"
    assert window.quality_panel.light.level.value == "good"
    assert window.model_picker.table.rowCount() == 2  # the two echo segmentation models, not the QC one
    assert "Dice" in [window.model_picker.table.horizontalHeaderItem(i).text() for i in range(5)]
    qtbot.waitUntil(lambda: "p50 -" not in window.latency_panel.percentiles.text(), timeout=TIMEOUT)
    assert len(window.latency_panel.latency_line.values) > 0
    assert window.session.bridge.displayed <= window.session.bridge.received
    assert "echo:60" in window.source_label.text()


def test_switching_source_changes_modality_models_and_slices(qtbot, window, fake_engine) -> None:
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.start()
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT) as loaded:
        window.open_source("cine:patient001")
    assert loaded.args[0].id == "cine-searched"
    assert window.state.modality == "cine" and window.transport.slice.isEnabled()
    qtbot.waitUntil(lambda: fake_engine.sources[0].closed, timeout=TIMEOUT)  # let go on a worker
    _wait_frames(qtbot, window)
    window.transport.slice.setValue(2)
    assert fake_engine.sources[1].slice == 2
    qtbot.waitUntil(lambda: window.session.last_result.frame.meta.get("slice") == 2, timeout=TIMEOUT)


def test_switching_model_live_keeps_playing(qtbot, window) -> None:
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.start()
    first = window.session.pipeline
    player = window.session.player
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT) as loaded:
        window.model_picker.table.selectRow(1)  # echo-baseline
    assert loaded.args[0].id == "echo-baseline"
    assert window.session.player is player  # playback was not restarted
    _wait_frames(qtbot, window)
    assert window.session.pipeline is not first
    assert window.state.model_choice("echo") == "echo-baseline"
    assert "echo-baseline" in window.model_picker.detail.text()


def test_quality_alert_after_n_low_frames_and_recovery(qtbot, tmp_path, settings) -> None:
    engine = FakeEngine(tmp_path / "models", Script(dice=lambda i: 0.3 if 10 <= i < 40 else 0.92))
    win = MainWindow(engine=engine.port(), settings=settings)
    qtbot.addWidget(win)
    win.state.set_thresholds(QualityThresholds(good=0.8, fair=0.7, alert_frames=6, clear_frames=3))
    win.state.set_loop(False)
    win.show()
    with qtbot.waitSignal(win.session.quality_alert, timeout=TIMEOUT, check_params_cb=lambda up: up):
        win.start()
    assert win.alert_banner.isVisible() and "re-acquire" in win.alert_banner.text()
    with qtbot.waitSignal(win.session.quality_alert, timeout=TIMEOUT, check_params_cb=lambda up: not up):
        pass
    assert not win.alert_banner.isVisible()
    win.close()


def test_recording_writes_incrementally_and_survives_closing(qtbot, window, settings) -> None:
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.start()
    with qtbot.waitSignal(window.session.recording_changed, timeout=TIMEOUT) as started:
        window.record_action.setChecked(True)
    folder = started.args[0]
    assert folder.parent == settings.recording_root()
    recorder = window.session.recorder
    qtbot.waitUntil(lambda: recorder.written >= 8, timeout=TIMEOUT)
    rows = list(csv.DictReader(open(folder / "frames.csv", newline="")))
    assert len(rows) >= 8 and rows[0]["model_id"] == "echo-searched"  # on disk while still recording
    shot = window.screenshot()
    assert shot is not None and shot.parent == folder / "screenshots" and shot.stat().st_size > 0
    window.close()  # mid-session
    rows = list(csv.DictReader(open(folder / "frames.csv", newline="")))
    assert len(rows) >= 8
    assert len(list((folder / "masks").glob("*.png"))) >= 8
    events = [json.loads(line)["event"] for line in open(folder / "qc_log.jsonl")]
    assert events[0] == "recording_started" and "screenshot" in events and events[-1] == "recording_stopped"
    assert json.loads((folder / "session.json").read_text())["ended"] is not None


def test_bad_file_shows_an_error_in_the_window_and_the_window_keeps_working(qtbot, window) -> None:
    with qtbot.waitSignal(window.session.source_failed, timeout=TIMEOUT) as failed:
        window.open_source("bad:/scans/broken.dcm")
    assert "broken.dcm" in failed.args[0] and "DICM" in failed.args[0]
    assert window.error_banner.isVisible() and "broken.dcm" in window.error_banner.text()
    assert "broken.dcm" in window.statusBar().currentMessage()
    assert "No source" in window.image.placeholder
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.open_demo()
    _wait_frames(qtbot, window)


def test_failed_frames_are_reported_and_playback_goes_on(qtbot, tmp_path, settings) -> None:
    engine = FakeEngine(tmp_path / "models", Script(fail_on=set(range(5, 60))))
    win = MainWindow(engine=engine.port(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: "fake inference failed" in win.statusBar().currentMessage(), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: win.session.pipeline.stats().errors > 0, timeout=TIMEOUT)
    win.close()


def test_without_engine_the_window_says_no_source_no_model(qtbot, settings) -> None:
    from app.viewer.engine_port import EnginePort

    win = MainWindow(engine=EnginePort(missing={"demo_source_spec": "not built"}), settings=settings)
    qtbot.addWidget(win)
    win.show()
    win.start()
    assert "No source / no model" in win.image.placeholder
    with qtbot.waitSignal(win.session.source_failed, timeout=TIMEOUT):
        win.open_source("phantom:echo")
    assert win.error_banner.isVisible()
    win.close()


def test_no_model_shows_raw_frames_with_a_watermark(qtbot, tmp_path, settings) -> None:
    engine = FakeEngine(tmp_path / "models")
    engine.cards = []
    win = MainWindow(engine=engine.port(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.session.model_loaded, timeout=TIMEOUT) as loaded:
        win.start()
    assert loaded.args == [None, None]
    _wait_frames(qtbot, win)
    assert win.image.result.mask is None and "NO MODEL" in win.image.watermark
    assert win.quality_panel.value.text() == "-"
    win.close()


def test_pause_step_and_overlay_controls(qtbot, window) -> None:
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.start()
    _wait_frames(qtbot, window)
    window.transport.play.click()
    assert window.session.paused and window.transport.play.text() == "Play"
    qtbot.waitUntil(window.session.bridge.idle, timeout=TIMEOUT)
    before = window.session.last_result.frame.index
    pipeline = window.session.pipeline
    submitted = pipeline.submitted
    window.transport.step.click()
    qtbot.waitUntil(lambda: window.session.last_result.frame.index > before, timeout=TIMEOUT)
    assert pipeline.submitted <= submitted + 2  # one frame (plus at most one in flight when paused)
    window.overlay_controls.opacity.setValue(80)
    window.overlay_controls.contour.setChecked(True)
    assert math.isclose(window.state.overlay.opacity, 0.8)
    assert pipeline.style.mode == "contour" and math.isclose(pipeline.style.opacity, 0.8)


def test_settings_persist_between_runs(qtbot, fake_engine, settings) -> None:
    win = MainWindow(engine=fake_engine.port(), settings=settings)
    qtbot.addWidget(win)
    win.state.set_opacity(0.3)
    win.state.set_overlay_mode("contour")
    win.state.set_thresholds(QualityThresholds(good=0.9, fair=0.6, alert_frames=7))
    win.state.set_speed(2.0)
    win.state.set_model_choice("echo", "echo-baseline")
    win.close()
    again = MainWindow(engine=fake_engine.port(), settings=settings)
    qtbot.addWidget(again)
    assert again.state.overlay.mode == "contour" and math.isclose(again.state.overlay.opacity, 0.3)
    assert again.state.thresholds == QualityThresholds(good=0.9, fair=0.6, alert_frames=7)
    assert again.state.speed == 2.0 and again.transport.speed.currentText() == "2x"
    assert again.state.model_choice("echo") == "echo-baseline"
    again.state.set_speed(math.inf)  # "max" is a validation mode: the next run starts at the last real speed
    again.close()
    third = MainWindow(engine=fake_engine.port(), settings=settings)
    qtbot.addWidget(third)
    assert third.state.speed == 2.0
    third.close()


def test_event_loop_delay_is_measured_while_replaying_at_full_speed(qtbot, window) -> None:
    window.state.set_speed(math.inf)
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.start()
    assert FakePlayer.instances[-1].paced is False
    qtbot.waitUntil(lambda: window.monitor.samples >= 20, timeout=TIMEOUT)
    report = window.ui_report()
    lag = report["event_loop_delay_ms"]
    assert lag["samples"] >= 20 and 0.0 <= lag["p50"] <= lag["p95"] <= lag["max"]
    assert report["speed"] == "max" and report["pipeline"]["processed"] > 0


def test_end_of_recording_then_play_restarts(qtbot, window) -> None:
    window.state.set_loop(False)
    with qtbot.waitSignal(window.session.ended, timeout=TIMEOUT):
        window.open_source("echo:12")
    assert window.session.paused and window.transport.play.text() == "Play"
    received = window.session.bridge.received
    window.transport.play.click()
    qtbot.waitUntil(lambda: window.session.bridge.received > received, timeout=TIMEOUT)
    assert window.session.last_result.frame.index < 12


def test_live_source_has_no_recording_controls(qtbot, window) -> None:
    with qtbot.waitSignal(window.session.source_opened, timeout=TIMEOUT):
        window.open_source("live:grabber")
    assert not window.transport.position.isEnabled() and not window.transport.step.isEnabled()
    assert not window.transport.speed.isEnabled() and not window.transport.slice.isEnabled()
    assert "live" in window.source_label.text()
    _wait_frames(qtbot, window)


def test_a_broken_model_is_reported_and_the_running_one_stays(qtbot, window, fake_engine) -> None:
    from app.cards import ModelCardError

    real_pipeline = fake_engine.pipeline

    def pipeline(seg, qc=None, **kwargs):
        if seg.id == "echo-baseline":
            raise ModelCardError(seg.onnx_path, "sha256 0123... does not match its card")
        return real_pipeline(seg, qc, **kwargs)

    window.engine.pipeline = pipeline
    with qtbot.waitSignal(window.session.model_loaded, timeout=TIMEOUT):
        window.start()
    running = window.session.pipeline
    with qtbot.waitSignal(window.session.error, timeout=TIMEOUT) as failed:
        window.model_picker.table.selectRow(1)
    assert "echo-baseline.onnx" in failed.args[0] and "sha256" in failed.args[0]
    assert window.error_banner.isVisible()
    assert window.session.pipeline is running and window.session.seg_card.id == "echo-searched"
    qtbot.waitUntil(lambda: window.model_picker.selected_id() == "echo-searched", timeout=TIMEOUT)
    assert window.state.model_choice("echo") == "echo-searched"  # the next run does not retry the broken one
    _wait_frames(qtbot, window)
