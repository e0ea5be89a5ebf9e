"""The viewer's main window: the live image in the middle, quality and speed at a glance beside it.

It wires widgets to the ``SessionController`` and the ``ViewerState``; it never touches frames
beyond handing the composed overlay to the image view (the engine decodes, infers and composes
on its own threads).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QMainWindow, QScrollArea, QVBoxLayout, QWidget

from app.engine.overlay import compose, to_rgb
from app.viewer.engine_port import EnginePort
from app.viewer.event_loop import EventLoopMonitor
from app.viewer.display_meter import DisplayMeter
from app.viewer.quality import ALERT_TEXT
from app.viewer.session import SessionController
from app.viewer.settings import ViewerSettings
from app.viewer.state import ViewerState
from app.viewer.widgets.dialogs import CaptureDialog, IgtlDialog, ThresholdsDialog
from app.viewer.widgets.image_view import LiveImageView
from app.viewer.widgets.latency_panel import LatencyPanel
from app.viewer.widgets.model_picker import ModelPicker
from app.viewer.widgets.overlay_controls import OverlayControls
from app.viewer.widgets.quality_panel import QualityPanel, error_banner, quality_banner
from app.viewer.widgets.transport import TransportBar

log = logging.getLogger(__name__)

FILE_FILTER = ("Recordings (*.dcm *.dicom *.nii *.nii.gz *.avi *.mp4 *.mov *.mkv *.wmv *.mha *.mhd);;"
               "DICOM (*.dcm *.dicom);;NIfTI (*.nii *.nii.gz);;Video (*.avi *.mp4 *.mov *.mkv *.wmv);;All files (*)")


class MainWindow(QMainWindow):
    """Top-level window of the scanner viewer.

    Args:
        engine: The engine's factories (default: the real ``app.engine``).
        settings: Where choices persist (default: the user's ``QSettings``).
        models_dir: Folder of models (default: ``models/``).
        max_display_fps: Upper bound on paints per second.
    """

    #: Emitted once, when the first segmentation overlay of the window's life is painted (start-up).
    first_frame_painted = pyqtSignal()

    def __init__(self, engine: EnginePort | None = None, settings: ViewerSettings | None = None, *,
                 models_dir=None, max_display_fps: float = 60.0):
        super().__init__()
        self.setWindowTitle("cardiac-rt - real-time cardiac segmentation")
        self.resize(1280, 800)
        self.engine = engine if engine is not None else EnginePort.real()
        self.settings = settings if settings is not None else ViewerSettings()
        self.state = ViewerState(self)
        self.settings.load_into(self.state)
        self.session = SessionController(self.engine, self.state, models_dir=models_dir,
                                         max_display_fps=max_display_fps, parent=self)
        self.monitor = EventLoopMonitor(parent=self)
        self.display_meter = DisplayMeter()
        self._last_frame_error_ns = 0
        self._first_frame_pending = True
        self._echo_note_shown: str | None = None
        self.first_frame_painted_unix: float | None = None
        self._build_widgets()
        self._build_actions()
        self._connect()
        geometry = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._show_no_source()

    # -- construction -------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.image = LiveImageView()
        self.error_banner = error_banner()
        self.alert_banner = quality_banner()
        self.source_label = QLabel("no source")
        self.source_label.setWordWrap(True)
        self.quality_panel = QualityPanel()
        self.latency_panel = LatencyPanel()
        self.model_picker = ModelPicker()
        self.overlay_controls = OverlayControls(self.state)
        self.transport = TransportBar(self.state)
        side = QVBoxLayout()
        for w in (self.source_label, self.quality_panel, self.latency_panel, self.overlay_controls,
                  self.model_picker):
            side.addWidget(w)
        side.addStretch(1)
        side_widget = QWidget()
        side_widget.setLayout(side)
        side_scroll = QScrollArea()  # small screens: the panel scrolls, the image keeps its room
        side_scroll.setWidget(side_widget)
        side_scroll.setWidgetResizable(True)
        side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        side_scroll.setFixedWidth(400)
        middle = QHBoxLayout()
        middle.addWidget(self.image, 1)
        middle.addWidget(side_scroll)
        root = QVBoxLayout()
        root.setContentsMargins(4, 4, 4, 4)
        root.addWidget(self.error_banner)
        root.addWidget(self.alert_banner)
        root.addLayout(middle, 1)
        root.addWidget(self.transport)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)
        self.rec_label = QLabel("")
        self.rec_label.setStyleSheet("color: #e33; font-weight: bold;")
        self.ui_label = QLabel("")
        self.statusBar().addPermanentWidget(self.rec_label)
        self.statusBar().addPermanentWidget(self.ui_label)

    def _action(self, menu, text: str, slot, shortcut: str | None = None, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        self._action(m, "Open file...", self.choose_file, "Ctrl+O")
        self._action(m, "Open folder...", self.choose_folder, "Ctrl+Shift+O")
        self._action(m, "Capture device...", self.choose_capture)
        self._action(m, "OpenIGTLink server...", self.choose_igtl)
        m.addSeparator()
        self.demo_action = self._action(m, "Demo recording", self.open_demo, "Ctrl+D")
        self._action(m, "Phantom echo (generated)", lambda: self.open_source("phantom:echo"))
        self._action(m, "Phantom cine MR (generated)", lambda: self.open_source("phantom:cine"))
        m.addSeparator()
        self._action(m, "Quit", self.close, "Ctrl+Q")
        m = bar.addMenu("&Playback")
        self._action(m, "Play / pause", self.session.toggle_play, "Space")
        self._action(m, "Step one frame", self.session.step, "Right")
        m = bar.addMenu("&Record")
        self.record_action = self._action(m, "Record session", self.set_recording, "Ctrl+R", checkable=True)
        self._action(m, "Screenshot", self.screenshot, "F12")
        self._action(m, "Session folder...", self.choose_recording_root)
        m = bar.addMenu("&Settings")
        self._action(m, "Quality thresholds...", self.edit_thresholds)
        toolbar = self.addToolBar("main")
        toolbar.setObjectName("mainToolbar")
        for text, slot in (("Open", self.choose_file), ("Demo", self.open_demo)):
            toolbar.addAction(text, slot)
        toolbar.addAction(self.record_action)
        toolbar.addAction("Screenshot", self.screenshot)

    def _connect(self) -> None:
        s = self.session
        s.source_opened.connect(self._on_source_opened)
        s.source_failed.connect(self._on_source_failed)
        s.models_listed.connect(self.model_picker.set_models)
        s.model_loaded.connect(self._on_model_loaded)
        s.frame_ready.connect(self._on_frame_ready)
        s.stats_updated.connect(self.latency_panel.show_stats)
        s.quality_alert.connect(self._on_quality_alert)
        s.playback_changed.connect(self.transport.show_paused)
        s.ended.connect(lambda: self.statusBar().showMessage("end of recording", 5000))
        s.error.connect(self.show_error)
        s.recording_changed.connect(self._on_recording_changed)
        s.echo_mode_changed.connect(self._on_echo_mode_changed)
        self.transport.play_toggled.connect(s.toggle_play)
        self.transport.step_requested.connect(s.step)
        self.transport.seek_requested.connect(s.seek)
        self.model_picker.model_requested.connect(s.select_model)
        self.model_picker.echo_mode_requested.connect(self.state.set_echo_mode_choice)
        self.image.painted.connect(self.display_meter.painted)
        self.state.overlay_changed.connect(self._on_overlay_changed)
        self.state.speed_changed.connect(self._update_source_rate)
        self._ui_timer = QTimer(self)
        self._ui_timer.setInterval(500)
        self._ui_timer.timeout.connect(self._update_ui_stats)
        self._ui_timer.start()
        self._log_timer = QTimer(self)
        self._log_timer.setInterval(1000)
        self._log_timer.timeout.connect(self._log_stats)
        self._log_timer.start()

    # -- sources ------------------------------------------------------------------------------
    def start(self, source: str | None = None) -> None:
        """Open ``source``, or the shipped demo recording; say clearly when there is neither."""
        self.monitor.start()
        if source:
            self.open_source(source)
        elif self.engine.demo_source_spec is not None:
            self.open_demo()
        else:
            self._show_no_source("The demo recording is not available in this build.")
            why = self.engine.missing.get("demo_source_spec")
            if why:
                self.statusBar().showMessage(why, 30000)

    def open_source(self, spec: str) -> None:
        self.statusBar().showMessage(f"opening {spec} ...")
        self.session.open_source(spec)

    def open_demo(self) -> None:
        if self.engine.demo_source_spec is None:
            self.show_error("the demo recording is not available in this build")
            return
        try:
            spec = self.engine.demo_source_spec()
        except Exception as exc:  # a missing asset must not take the window down
            self.show_error(f"demo recording: {exc}")
            return
        self.open_source(spec)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a recording", self.settings.last_dir(), FILE_FILTER)
        if path:
            self.settings.set_last_dir(str(Path(path).parent))
            self.open_source(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder (ACDC patient, image series, phantom case)",
                                                self.settings.last_dir())
        if path:
            self.settings.set_last_dir(path)
            self.open_source(path)

    def choose_capture(self) -> None:
        d = CaptureDialog(self)
        if d.dialog.exec():
            self.open_source(d.spec())

    def choose_igtl(self) -> None:
        d = IgtlDialog(self, str(self.settings.qs.value("sources/igtl", "localhost:18944")))
        if d.dialog.exec():
            try:
                spec = d.spec()
            except ValueError as exc:
                self.show_error(f"OpenIGTLink address: {exc}")
                return
            self.settings.qs.setValue("sources/igtl", d.address.text().strip())
            self.open_source(spec)

    def _on_source_opened(self, info) -> None:
        parts = [info.name, info.modality or "unknown modality"]
        if info.frame_rate:
            parts.append(f"{info.frame_rate:.1f} fps")
        parts.append(f"{info.n_frames} frames" if info.n_frames else "live")
        if info.n_slices > 1:
            parts.append(f"{info.n_slices} slices")
        if info.has_ground_truth:
            parts.append("ground truth")
        self.source_label.setText("Source: " + ", ".join(parts))
        self.transport.configure(info)
        self._update_source_rate()
        self._first_frame_pending = True
        self.latency_panel.clear()
        self.alert_banner.hide()
        self.error_banner.hide()
        self.image.placeholder = "waiting for the first frame..."
        self.statusBar().showMessage(f"opened {info.name}", 5000)

    def _update_source_rate(self, *_) -> None:
        info = self.session.info
        rate = info.frame_rate if info is not None else None
        speed = self.state.speed
        self.latency_panel.set_source_rate(rate * speed if rate and math.isfinite(speed) else None,
                                           unpaced=bool(rate) and not math.isfinite(speed))

    def _on_source_failed(self, message: str) -> None:
        self.show_error(message)
        if self.session.source is None:
            self._show_no_source("Could not open the source:\n" + message)

    def _show_no_source(self, why: str = "") -> None:
        self.image.clear(f"No source / no model.\n{why}\nFile > Open, or File > Demo recording.".replace("\n\n", "\n"))
        self.quality_panel.show_no_qc("no source")

    # -- models -------------------------------------------------------------------------------
    def _on_model_loaded(self, seg, qc) -> None:
        self.model_picker.show_loaded(seg, qc)
        self.overlay_controls.set_classes(seg.classes if seg is not None else {})
        self.image.watermark = "" if seg is not None else "NO MODEL - frames shown without segmentation"
        if qc is None:
            self.quality_panel.show_no_qc("no QC model" if seg is not None else "no model")
        if seg is not None:
            self.statusBar().showMessage(f"model {seg.id} running", 5000)

    def _on_echo_mode_changed(self, status) -> None:
        """The Models panel shows the echo mode; a model that does not fit it is said in the status bar too."""
        self.model_picker.show_echo_mode(status)
        note = status.note if status is not None else None
        if note and note != self._echo_note_shown:
            self.statusBar().showMessage(note, 15000)
        self._echo_note_shown = note

    # -- frames -------------------------------------------------------------------------------
    def _rgb_for(self, result) -> object:
        """The pipeline's composed overlay; composed here only if the pipeline left it out."""
        if result.overlay is not None:
            return result.overlay
        if result.mask is not None:
            return compose(result.frame.image, result.mask, self.state.overlay)
        return to_rgb(result.frame.image)

    def _on_frame_ready(self, result, summaries) -> None:
        if self._first_frame_pending:
            # measure the steady state: opening the source and loading models are one-off costs
            self._first_frame_pending = False
            self.monitor.reset()
            self.display_meter.reset()
        self.image.show_frame(result, self._rgb_for(result))
        if self.first_frame_painted_unix is None and result.mask is not None:
            self.first_frame_painted_unix = time.time()  # wall clock: compared with the launcher's
            self.first_frame_painted.emit()
        info = self.session.info
        n_frames = info.n_frames if info is not None else None
        self.transport.show_position(result.frame.index, n_frames)
        self.image.caption = f"frame {result.frame.index + 1}" + (f"/{n_frames}" if n_frames else "")
        if self.session.qc_card is not None or result.predicted_dice is not None:
            level = self.state.thresholds.classify(result.predicted_dice)
            self.quality_panel.show_quality(result.predicted_dice, level, result.true_dice)
        elif result.true_dice is not None:
            self.quality_panel.detail.setText(f"no QC model; vs ground truth: {result.true_dice:.2f}")
        self.latency_panel.add_frames([s.latency_ms for s in summaries])
        errors = [s for s in summaries if s.error]
        now = time.perf_counter_ns()
        if errors and now - self._last_frame_error_ns > 1e9:
            self._last_frame_error_ns = now
            self.statusBar().showMessage(f"frame {errors[-1].index}: {errors[-1].error}", 5000)

    def _on_overlay_changed(self, style) -> None:
        result = self.session.last_result
        if result is not None and self.session.paused and result.mask is not None:
            # paused: redraw the frame on screen in the new style (one frame, a few ms)
            self.image.show_frame(result, compose(result.frame.image, result.mask, style))

    def _on_quality_alert(self, raised: bool) -> None:
        if raised:
            n = self.state.thresholds.alert_frames
            self.alert_banner.show_message(f"{ALERT_TEXT} (predicted Dice low for {n}+ frames)")
        else:
            self.alert_banner.hide()

    def display_figures(self) -> dict:
        """What the display itself achieves: shown FPS, arrival->painted latency, UI event-loop lag."""
        return {"shown_fps": self.display_meter.shown_fps(),
                "painted_latency_p50_ms": self.display_meter.painted_latency_p50(),
                "event_loop_delay_ms": self.monitor.summary(),
                "results_received": self.session.bridge.received, "results_displayed": self.session.bridge.displayed}

    def _update_ui_stats(self) -> None:
        fig = self.display_figures()
        lag = fig["event_loop_delay_ms"]
        self.latency_panel.show_display(fig["shown_fps"], fig["painted_latency_p50_ms"], lag["p95"])
        if math.isfinite(lag["p95"]):
            self.ui_label.setText(f"UI lag p95 {lag['p95']:.1f} ms, max {lag['max']:.0f} ms")

    def _log_stats(self) -> None:
        recorder = self.session.recorder
        if recorder is not None and self.session.pipeline is not None:
            recorder.log_event("stats", pipeline=self.session.pipeline.stats().to_dict(), display=self.display_figures())

    # -- errors -------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """Status bar and a dismissable banner; never a modal dialog over the live image."""
        log.warning("%s", message)
        self.statusBar().showMessage(message, 15000)
        self.error_banner.show_message(message)
        if self.session.recorder is not None:
            self.session.recorder.log_event("error", message=message)

    # -- recording ----------------------------------------------------------------------------
    recording_root_override: Path | None = None

    def recording_root(self) -> Path:
        """Where session folders go (``--record DIR`` for this run, else the setting)."""
        return self.recording_root_override or self.settings.recording_root()

    def set_recording(self, on: bool) -> None:
        if on and self.session.recorder is None:
            try:
                self.session.start_recording(self.recording_root())
            except OSError as exc:
                self.show_error(f"cannot record: {exc}")
                self.record_action.setChecked(False)
        elif not on and self.session.recorder is not None:
            self.session.stop_recording()

    def _on_recording_changed(self, folder) -> None:
        self.rec_label.setText("" if folder is None else f"REC {folder}")
        self.record_action.blockSignals(True)
        self.record_action.setChecked(folder is not None)
        self.record_action.blockSignals(False)
        if folder is not None:
            self.statusBar().showMessage(f"recording to {folder}", 5000)

    def choose_recording_root(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for recorded sessions", str(self.settings.recording_root()))
        if path:
            self.settings.set_recording_root(path)

    def screenshot(self) -> Path | None:
        """Save the window as PNG into the session (or ``<root>/screenshots``); returns the path."""
        recorder = self.session.recorder
        if recorder is not None:
            path = recorder.next_screenshot_path()
        else:
            folder = self.recording_root() / "screenshots"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / time.strftime("screen-%Y%m%d-%H%M%S.png")
        if not self.grab().save(str(path)):
            self.show_error(f"{path}: could not save the screenshot")
            return None
        if recorder is not None:
            recorder.log_event("screenshot", file=path.name)
        self.statusBar().showMessage(f"screenshot saved: {path}", 5000)
        return path

    def edit_thresholds(self) -> None:
        d = ThresholdsDialog(self.state.thresholds, self)
        if d.dialog.exec():
            try:
                self.state.set_thresholds(d.thresholds())
            except ValueError as exc:
                self.show_error(f"quality thresholds: {exc}")

    # -- closing ------------------------------------------------------------------------------
    def ui_report(self) -> dict:
        """Figures for ``--ui-report``: display, event loop, pipeline."""
        report = self.display_figures()
        pipeline = self.session.pipeline
        report["pipeline"] = pipeline.stats().to_dict() if pipeline is not None else None
        report["model_id"] = self.session.seg_card.id if self.session.seg_card else None
        report["source"] = self.session.info.name if self.session.info else None
        report["speed"] = "max" if not math.isfinite(self.state.speed) else self.state.speed
        report["first_frame_painted_unix"] = self.first_frame_painted_unix
        return report

    def closeEvent(self, event) -> None:
        self.settings.set_geometry(self.saveGeometry())
        self.settings.save_from(self.state)
        self.monitor.stop()
        self._ui_timer.stop()
        self._log_timer.stop()
        self.ui_report_at_close = self.ui_report()
        self.session.shutdown()
        super().closeEvent(event)

