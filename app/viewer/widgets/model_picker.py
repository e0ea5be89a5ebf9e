"""Pick the segmentation model: every card of the modality with its method, Dice and latency."""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

COLUMNS = ("model", "method", "Dice", "p50 ms", "FPS")


def card_figures(card) -> tuple[str, str, str, str, str]:
    """The row a card gets: id, method, mean Dice, latency p50, FPS (``-`` where the card has none)."""
    m = card.metrics
    dice = (m.get("dice") or {}).get("mean")
    p50 = (m.get("latency_ms") or {}).get("p50")
    fps = m.get("fps")

    def num(v, fmt):
        return format(float(v), fmt) if isinstance(v, (int, float)) else "-"

    return card.id, card.method, num(dice, ".3f"), num(p50, ".1f"), num(fps, ".0f")


class ModelPicker(QWidget):
    """A table of segmentation models; selecting a row asks for that model.

    Signals:
        model_requested(str): a model id the user picked.
    """

    model_requested = pyqtSignal(str)

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
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.table)
        lay.addWidget(self.detail)
        self._ids: list[str] = []
        self._updating = False
        self.table.itemSelectionChanged.connect(self._on_selection)

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

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._ids[rows[0].row()] if rows else None

    def _on_selection(self) -> None:
        if self._updating:
            return
        model_id = self.selected_id()
        if model_id is not None:
            self.model_requested.emit(model_id)
