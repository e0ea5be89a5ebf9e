"""Pick the segmentation model: every card of the modality with its method, Dice and latency.

For echo the panel also says whether the recording is contrast or B-mode echo (detected, or the
user's override, with the reason as a tooltip) and lets the user override it: auto / contrast / B-mode.
A note says when the running model was not made for that echo mode.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QTableWidget,
                             QTableWidgetItem, QVBoxLayout, QWidget)

from app.cards import NEWEST_FRAME_MARK, NEWEST_FRAME_NOTE, metric_mean

COLUMNS = ("model", "method", "Dice", "p50 ms", "FPS")
DICE_COLUMN = COLUMNS.index("Dice")
ECHO_CHOICES = (("auto", "auto"), ("contrast", "contrast"), ("bmode", "B-mode"))  # (value, shown)
MODE_TEXT = {"contrast": "contrast echo", "bmode": "B-mode echo"}


def card_figures(card) -> tuple[str, str, str, str, str]:
    """The row a card gets: id, method, mean Dice, latency p50, FPS (``-`` where the card has none).

    Dice is ``ModelCard.app_dice``: for a clip model the Dice of the newest frame, the one the app
    shows, marked ``NEWEST_FRAME_MARK`` (``dice_tooltip`` says so), where its card has it.
    """
    m = card.metrics
    dice = card.app_dice
    mark = NEWEST_FRAME_MARK if card.newest_frame_dice is not None else ""
    p50 = (m.get("latency_ms") or {}).get("p50")
    fps = m.get("fps")

    def num(v, fmt):
        return format(float(v), fmt) if isinstance(v, (int, float)) else "-"

    return card.id, card.method, num(dice, ".3f") + mark, num(p50, ".1f"), num(fps, ".0f")


def dice_tooltip(card) -> str:
    """What a card's Dice cell means (empty for a model whose figure is its card's ``metrics.dice``)."""
    if card.newest_frame_dice is None:
        return ""
    every = metric_mean(card.metrics.get("dice"))
    also = f"; averaged over every clip position the card says {every:.3f}" if every is not None else ""
    return f"{NEWEST_FRAME_MARK}: {NEWEST_FRAME_NOTE} (card metrics.dice_newest_frame{also})"


class ModelPicker(QWidget):
    """A table of segmentation models; selecting a row asks for that model.

    Signals:
        model_requested(str): a model id the user picked.
        echo_mode_requested(str): the echo mode the user chose: ``auto``, ``contrast`` or ``bmode``.
    """

    model_requested = pyqtSignal(str)
    echo_mode_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("Models")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setMaximumHeight(130)
        self.detail = QLabel("no model loaded")
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet("color: #bbb;")
        self.echo_choice = QComboBox()
        self.echo_choice.setObjectName("echoModeChoice")
        for value, shown in ECHO_CHOICES:
            self.echo_choice.addItem(shown, value)
        self.echo_choice.setToolTip("contrast or B-mode echo: auto uses what the recording says or looks like")
        self.echo_label = QLabel("")
        self.echo_label.setObjectName("echoModeLabel")
        self.echo_label.setWordWrap(True)
        self.echo_note = QLabel("")
        self.echo_note.setObjectName("echoModeNote")
        self.echo_note.setWordWrap(True)
        self.echo_note.setStyleSheet("color: #e0a030;")
        self.echo_note.hide()
        self.echo_row = QWidget()
        row = QHBoxLayout(self.echo_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Echo"))
        row.addWidget(self.echo_choice)
        row.addWidget(self.echo_label, 1)
        self.echo_row.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.echo_row)
        lay.addWidget(self.echo_note)
        lay.addWidget(self.table)
        lay.addWidget(self.detail)
        self._ids: list[str] = []
        self._updating = False
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.echo_choice.currentIndexChanged.connect(self._on_echo_choice)

    def set_models(self, modality: str, cards: list) -> None:
        self._updating = True
        self.title.setText(f"Models ({modality})")
        self.table.setRowCount(len(cards))
        self._ids = [c.id for c in cards]
        for row, card in enumerate(cards):
            for col, text in enumerate(card_figures(card)):
                item = QTableWidgetItem(text)
                if col >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == DICE_COLUMN and dice_tooltip(card):
                    item.setToolTip(dice_tooltip(card))
                self.table.setItem(row, col, item)
        self._updating = False

    def show_loaded(self, seg, qc) -> None:
        """Highlight the running model and describe it (with its QC pair and measuring hardware)."""
        self._updating = True
        if seg is None:
            self.table.clearSelection()
            self.detail.setText("no model loaded: frames are shown without segmentation")
        else:
            if seg.id in self._ids:
                self.table.selectRow(self._ids.index(seg.id))
            m = seg.metrics
            hw = m.get("hardware") or "unknown hardware"
            rt = m.get("runtime") or ""
            self.detail.setText(f"running {seg.id} ({seg.method})\nQC: {qc.id if qc else 'none'}\n"
                                f"card figures measured on {hw} {rt}".strip())
        self._updating = False

    def show_echo_mode(self, status) -> None:
        """Show the echo mode in effect (``session.EchoModeStatus``); hidden for cine."""
        if status is None or not status.applies:
            self.echo_row.hide()
            self.echo_note.hide()
            return
        self.echo_row.show()
        self.echo_choice.blockSignals(True)
        self.echo_choice.setCurrentIndex(max(0, self.echo_choice.findData(status.choice)))
        self.echo_choice.blockSignals(False)
        if status.mode is None:
            self.echo_label.setText("not detected")
        else:
            how = "detected" if status.choice == "auto" else "chosen"
            if status.choice != "auto" and status.detected is not None:
                how += f"; detected {MODE_TEXT[status.detected.mode]}"
            self.echo_label.setText(f"{MODE_TEXT[status.mode]} ({how})")
        self.echo_label.setToolTip(status.reason)
        self.echo_note.setText(status.note or "")
        self.echo_note.setVisible(bool(status.note))

    def echo_mode_text(self) -> str:
        """What the panel says about the echo mode (tests, screenshots)."""
        return " ".join(t for t in (self.echo_label.text(), self.echo_note.text() if self.echo_note.isVisible() else "")
                        if t)

    def _on_echo_choice(self, index: int) -> None:
        value = self.echo_choice.itemData(index)
        if value:
            self.echo_mode_requested.emit(str(value))

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._ids[rows[0].row()] if rows else None

    def _on_selection(self) -> None:
        if self._updating:
            return
        model_id = self.selected_id()
        if model_id is not None:
            self.model_requested.emit(model_id)
