"""The window on the real engine: the shipped demo through the real Player (and Pipeline when models exist)."""

from __future__ import annotations

import pytest

from app.engine import models
from tests.app.engine.tiny_models import write_echo_models

pytestmark = pytest.mark.gui
TIMEOUT = 30_000


def _window(qtbot, settings, models_dir):
    from app.viewer.engine_port import EnginePort
    from app.viewer.main_window import MainWindow

    engine = EnginePort.real()
    win = MainWindow(engine=engine, settings=settings, models_dir=models_dir)
    qtbot.addWidget(win)
    win.show()
    return win


def test_demo_plays_pauses_and_steps_with_the_real_player(qtbot, settings, tmp_path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    win = _window(qtbot, settings, empty)  # no models: raw frames through the real player
    with qtbot.waitSignal(win.session.source_opened, timeout=TIMEOUT) as opened:
        win.start()
    assert opened.args[0].modality == "echo" and opened.args[0].n_frames
    qtbot.waitUntil(lambda: win.session.bridge.displayed >= 3, timeout=TIMEOUT)
    assert win.image.result.mask is None and "NO MODEL" in win.image.watermark
    win.session.pause()
    qtbot.waitUntil(win.session.bridge.idle, timeout=TIMEOUT)
    before = win.session.last_result.frame.index
    win.session.step()
    qtbot.waitUntil(lambda: win.session.last_result.frame.index != before, timeout=TIMEOUT)
    win.close()


def test_demo_through_the_shipped_models(qtbot, settings) -> None:
    if not models.list_models("echo"):
        pytest.skip("no echo model in models/ yet")
    win = _window(qtbot, settings, None)
    with qtbot.waitSignal(win.session.model_loaded, timeout=TIMEOUT) as loaded:
        win.start()
    seg, qc = loaded.args
    assert seg is not None and seg.modality == "echo"
    qtbot.waitUntil(lambda: win.session.last_result is not None and win.session.last_result.mask is not None,
                    timeout=TIMEOUT)
    if qc is not None:
        qtbot.waitUntil(lambda: win.quality_panel.value.text() not in ("-", ""), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: win.session.pipeline.stats().processed >= 3, timeout=TIMEOUT)
    win.close()


@pytest.fixture
def tiny_models_dir(tmp_path):
    """The engine tests' tiny ONNX models (valid cards, real onnxruntime sessions)."""
    folder = tmp_path / "models"
    write_echo_models(folder, seg_id="tiny-echo-seg", qc_id="tiny-echo-qc", method="segqc-hw")
    write_echo_models(folder, size=48, seg_id="tiny-echo-base", qc_id="tiny-echo-base-qc", method="baseline-tiny")
    return folder


def test_real_pipeline_model_switch_and_recording(qtbot, settings, tiny_models_dir) -> None:
    import csv

    win = _window(qtbot, settings, tiny_models_dir)
    with qtbot.waitSignal(win.session.model_loaded, timeout=TIMEOUT) as loaded:
        win.start()
    assert loaded.args[0].id == "tiny-echo-seg" and loaded.args[1].id == "tiny-echo-qc"
    qtbot.waitUntil(lambda: win.session.last_result is not None and win.session.last_result.mask is not None,
                    timeout=TIMEOUT)
    qtbot.waitUntil(lambda: win.quality_panel.value.text() not in ("-", ""), timeout=TIMEOUT)
    assert win.model_picker.table.rowCount() == 2
    win.set_recording(True)
    recorder = win.session.recorder
    with qtbot.waitSignal(win.session.model_loaded, timeout=TIMEOUT) as switched:
        win.session.select_model("tiny-echo-base")
    assert switched.args[0].id == "tiny-echo-base"
    qtbot.waitUntil(lambda: recorder.written >= 5, timeout=TIMEOUT)
    first = win.session.pipeline
    qtbot.waitUntil(lambda: first.stats().processed >= 3, timeout=TIMEOUT)
    win.close()
    rows = list(csv.DictReader(open(recorder.folder / "frames.csv", newline="")))
    assert rows and any(r["model_id"] == "tiny-echo-base" for r in rows)
    assert any(r["predicted_dice"] for r in rows)


def test_true_dice_matches_classes_by_name_with_each_source(qtbot, settings, tmp_path) -> None:
    """The viewer tells the pipeline each source's label map: the contrast pair's myocardium (1) is
    scored against CAMUS 2 MYO on a B-mode recording, and against 1 on a contrast one."""
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    folder = tmp_path / "models"
    write_echo_models(folder)  # the contrast pair only: a B-mode recording falls back to it
    bmode = write_echo_dicom(render_echo_case(5, 0, n_frames=4, size=64, variant="bmode"), tmp_path / "b.dcm", 1)
    contrast = write_echo_dicom(render_echo_case(5, 1, n_frames=4, size=64), tmp_path / "c.dcm", 2)
    win = _window(qtbot, settings, folder)
    with qtbot.waitSignal(win.session.model_loaded, timeout=TIMEOUT):
        win.session.open_source(str(bmode))
    assert win.session.pipeline.class_match.ground_truth_label == {1: 2}
    qtbot.waitUntil(lambda: win.session.last_result is not None and win.session.last_result.true_dice is not None,
                    timeout=TIMEOUT)
    with qtbot.waitSignal(win.session.model_loaded, timeout=TIMEOUT):  # another echo mode: the pair reloads
        win.session.open_source(str(contrast))
    assert win.session.pipeline.class_match.ground_truth_label == {1: 1}
    kept = win.session.pipeline
    unlabelled = write_echo_dicom(render_echo_case(5, 2, n_frames=4, size=64), tmp_path / "u.dcm", 3)
    (tmp_path / "u_mask.npz").unlink()
    with qtbot.waitSignal(win.session.source_opened, timeout=TIMEOUT):  # same echo mode: the pipeline stays
        win.session.open_source(str(unlabelled))
    assert win.session.pipeline is kept and not kept.class_match.by_name
    win.close()
