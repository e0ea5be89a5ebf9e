"""The summary table of shipped models (from their cards): Dice, latency, FPS, real-time or not.

Echo segmentation models are listed with their QC partner: the framework latency is seg + QC
(the two run back to back for every frame). "Real time" is the project's one rule
(``app.realtime.REALTIME``: p95 latency <= 50 ms and >= 22 FPS), for model inference alone on the
card's hardware (the end-to-end figure, with preprocessing and overlay, comes from
``python -m app replay``).

Dice is ``app.cards.ModelCard.app_dice``, the figure the app compares models by: for a clip model
whose card has ``metrics.dice_newest_frame``, the Dice of the newest frame (the one the app shows),
marked ``NEWEST_FRAME_MARK`` with a note under the table; else the card's ``metrics.dice``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from app.cards import NEWEST_FRAME_MARK, NEWEST_FRAME_NOTE, ModelCard, Timing, metric_mean
from app.realtime import REALTIME

_NAN = float("nan")


@dataclass(frozen=True)
class SummaryRow:
    model: str
    modality: str
    dice: float | None
    qc_mae: float | None
    p50_ms: float
    p95_ms: float
    fps: float
    machine: str = ""
    newest_frame: bool = False  # ``dice`` is a clip model's Dice of the newest frame (``ModelCard.app_dice``)
    dice_all_positions: float | None = None  # then: its card's metrics.dice, averaged over every clip position

    @property
    def dice_text(self) -> str:
        """``dice`` to 3 decimals, marked ``NEWEST_FRAME_MARK`` when it is a clip model's newest-frame Dice."""
        return _num(self.dice) + (NEWEST_FRAME_MARK if self.newest_frame and self.dice is not None else "")

    @property
    def real_time(self) -> bool:
        return REALTIME.meets(self.p95_ms, self.fps)


def summary_rows(cards: Sequence[ModelCard]) -> list[SummaryRow]:
    """One row per segmentation model (QC partners folded into their seg model's row).

    Latencies of a pair add; its FPS is that of the two run back to back (``app.cards.Timing.then``).
    A card without latency figures gets NaN (never real time).
    """
    by_id = {c.id: c for c in cards}
    rows = []
    for card in sorted(cards, key=lambda c: (c.modality, c.id)):
        if card.role != "seg":
            continue
        m = card.metrics
        timing: Timing | None = card.timing
        name, qc_mae = card.id, None
        qc = by_id.get(card.pairs_with or "")
        if qc is not None:
            timing = timing.then(qc.timing) if timing is not None and qc.timing is not None else None
            qc_mae = qc.metrics.get("qc_mae")
            name = f"{card.id} + {qc.id}"
        dice, newest = card.app_dice, card.newest_frame_dice is not None
        machine = "; ".join(", ".join(str(m[k]).split(", ")[:n]) for k, n in (("hardware", 3), ("runtime", 2)) if m.get(k))
        load = (m.get("latency_context") or {}).get("load_avg_before")
        machine += f"; load {load[0]:.2f}" if load else ("; load not recorded" if machine else "")
        p50, p95, fps = (timing.p50_ms, timing.p95_ms, timing.fps) if timing is not None else (_NAN, _NAN, _NAN)
        rows.append(SummaryRow(name, card.modality, dice, qc_mae, p50, p95, fps, machine, newest,
                               metric_mean(m.get("dice")) if newest else None))
    return rows


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def newest_frame_note(rows: Sequence[SummaryRow]) -> str | None:
    """The line under a table that has rows marked ``NEWEST_FRAME_MARK`` (None when it has none)."""
    marked = [r for r in rows if r.newest_frame]
    if not marked:
        return None
    every = ", ".join(f"{r.model.split(' + ')[0]} {_num(r.dice_all_positions)}" for r in marked)
    return (f"Dice {NEWEST_FRAME_MARK}: {NEWEST_FRAME_NOTE} (card metrics.dice_newest_frame; averaged over every "
            f"clip position, metrics.dice, the card says {every})")


def format_summary(cards: Sequence[ModelCard]) -> str:
    """A plain-text table of ``summary_rows``."""
    rows = summary_rows(cards)
    if not rows:
        return "(no segmentation models)"
    head = (f"{'model':<58} {'mod':<5} {'Dice':>6} {'QC MAE':>7} {'p50 ms':>8} {'p95 ms':>8} {'FPS':>7}  "
            f"real time ({REALTIME.describe()})")
    lines = [head, "-" * len(head)]
    for r in rows:
        mark = NEWEST_FRAME_MARK if r.newest_frame else " "
        lines.append(f"{r.model:<58} {r.modality:<5} {_num(r.dice):>6}{mark}{_num(r.qc_mae):>7} {r.p50_ms:8.1f} {r.p95_ms:8.1f} {r.fps:7.1f}  "
                     f"{'yes' if r.real_time else 'no'}")
    note = newest_frame_note(rows)
    return "\n".join(lines + ([note] if note else []))


def summary_markdown(cards: Sequence[ModelCard]) -> str:
    """``summary_rows`` as a Markdown table, with the machine each card was measured on."""
    rows = summary_rows(cards)
    if not rows:
        return "(no segmentation models)"
    lines = ["| model | modality | Dice | QC MAE | latency p50 (ms) | latency p95 (ms) | FPS | "
             f"meets {REALTIME.p95_ms:g} ms / {REALTIME.fps:g} FPS | machine |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.modality} | {r.dice_text} | {_num(r.qc_mae)} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.fps:.1f} | "
                     f"{'yes' if r.real_time else 'no'} | {r.machine or '-'} |")
    note = newest_frame_note(rows)
    return "\n".join(lines + (["", note] if note else []))
