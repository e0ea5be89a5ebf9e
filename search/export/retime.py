"""Re-time the model cards of a folder on this machine, together, when the machine is quiet.

A card's latency is taken at export, on whatever the build machine was doing then; cards exported on
different days, under load 1 or load 10, do not compare, and the app falls back on them wherever
``python -m app models --benchmark`` has not run. ``retime_cards`` times every card of a models folder in one
process, the way the app runs a model (``search.latency.measure.measure_blocks``: warm back-to-back blocks
with the deployed session settings, every model one block per round in a shuffled order, so a drift of the
load hits them alike) on seeded random inputs of each card's input shapes, and rewrites each card's latency fields
(``search.export.latency.latency_fields``: figures, machine, runtime, and ``latency_context`` with the load
averages before and after). The figures it replaces stay in the card as ``metrics.latency_previous``;
``meets_realtime`` is recomputed from the new figures by ``write_card``, which re-reads and verifies the card.

It refuses to run (``RetimeRefused``) while the 1-minute load average is above ``max_load``: a latency written
under unknown load is the problem it solves. Nothing is written until every card is timed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence


class RetimeRefused(RuntimeError):
    """The machine is too busy, or the folder holds nothing to time; the message says which and what to do.

    Attributes:
        load: The 1-minute load average that was too high (None: refused for another reason).
    """

    def __init__(self, message: str, load: float | None = None):
        super().__init__(message)
        self.load = load


#: Default ceiling on the 1-minute load average, per logical core.
MAX_LOAD_PER_CORE = 0.75


@dataclass(frozen=True)
class Retimed:
    """One card re-timed: its id, its previous and its new p50 / p95 (ms), and whether it meets 50 ms / 22 FPS."""

    model_id: str
    previous_p50: float | None
    previous_p95: float | None
    p50: float
    p95: float
    meets_realtime: bool


def default_max_load() -> float:
    """``MAX_LOAD_PER_CORE`` x this machine's logical cores (1.5 on 2 cores)."""
    return MAX_LOAD_PER_CORE * (os.cpu_count() or 1)


def retime_cards(models_dir: Path | str, *, ids: Sequence[str] | None = None, rounds: int = 6, runs: int = 10,
                 warmup: int = 5, threads: int | None = None, max_load: float | None = None, seed: int = 0,
                 say: Callable[[str], None] = print) -> list[Retimed]:
    """Time the cards of ``models_dir`` (or only ``ids``) together and write their new latency fields.

    Args:
        models_dir: Folder of ``<id>.json`` + ``<id>.onnx``.
        ids: Only these cards (default: every card in the folder).
        rounds: Blocks per model.
        runs: Timed runs per block (each model gets ``rounds * runs`` timed runs).
        warmup: Discarded runs at the start of each block.
        threads: Intra-op threads (default: the app's ``default_threads()``).
        max_load: Refuse while the 1-minute load average is above this (default ``default_max_load()``).
        seed: Seed of the round order.
        say: Progress lines.

    Returns:
        One ``Retimed`` per card, in id order.

    Raises:
        RetimeRefused: the load is too high, no card, or an id is not in the folder.
        app.cards.ModelCardError: a card does not verify against its ONNX file (named in the message).
    """
    import copy

    from app.cards import discover
    from app.engine.benchmark import load_average
    from app.engine.runtime import default_threads
    from search.export.card_writer import write_card
    from search.export.latency import LATENCY_KEYS, latency_fields
    from search.latency.measure import measure_blocks

    models_dir = Path(models_dir)
    cards = {c.id: c.verify() for c in discover(models_dir)}
    if not cards:
        raise RetimeRefused(f"{models_dir}: no model cards to re-time")
    if ids:
        missing = sorted(set(ids) - set(cards))
        if missing:
            raise RetimeRefused(f"{models_dir}: no card {', '.join(missing)} (cards: {', '.join(sorted(cards))})")
        cards = {i: cards[i] for i in sorted(set(ids))}
    limit = default_max_load() if max_load is None else max_load
    before = load_average()
    if before is not None and before[0] > limit:
        raise RetimeRefused(f"load average {before[0]:.2f} is above {limit:.2f}: the figures would carry that load "
                            "into the cards; wait until the machine is quiet (`uptime`), or pass --max-load", before[0])
    threads = threads or default_threads()
    say(f"timing {len(cards)} models in {models_dir}: {rounds} rounds x {runs} runs each (after {warmup} warm-up "
        f"runs per block), {threads} threads, load {before}")
    shapes = {i: {c.input_name: tuple(c.input_shape)} for i, c in cards.items()}
    stats = measure_blocks({i: c.onnx_path for i, c in cards.items()}, shapes, warmup=warmup,
                           runs=runs, rounds=rounds, intra_op_threads=threads, seed=seed)
    after = load_average()
    how = (f"python -m search retime: {rounds} round{'s' * (rounds != 1)} x {runs} back-to-back runs ({warmup} "
           f"warm-up runs per block), "
           f"every card of the folder timed together ({len(cards)}), random inputs of the card's shapes")
    done = []
    for model_id, card in cards.items():
        raw = copy.deepcopy(card.raw)
        metrics = raw.setdefault("metrics", {})
        old = metrics.get("latency_ms") or {}
        metrics["latency_previous"] = {k: metrics[k] for k in LATENCY_KEYS if k in metrics}
        metrics.update(latency_fields(stats[model_id], how=how, load_before=before, load_after=after))
        written = write_card(raw, card.card_path)
        new = metrics["latency_ms"]
        done.append(Retimed(model_id, old.get("p50"), old.get("p95"), new["p50"], new["p95"],
                            bool(written.raw.get("meets_realtime"))))
    return done


def table(rows: Sequence[Retimed]) -> str:
    """The re-timed cards as a Markdown table: previous and new p50 / p95, and the real-time verdict."""
    lines = ["| model | previous p50 / p95 ms | new p50 / p95 ms | meets 50 ms / 22 FPS |", "|---|---|---|---|"]
    for r in rows:
        prev = "-" if r.previous_p50 is None else f"{r.previous_p50:.1f} / {r.previous_p95:.1f}"
        lines.append(f"| {r.model_id} | {prev} | {r.p50:.1f} / {r.p95:.1f} | {'yes' if r.meets_realtime else 'no'} |")
    return "\n".join(lines)
