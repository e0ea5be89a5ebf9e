"""The one real-time rule: its boundaries, the figures it reads, and every shipped card agreeing with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from app.cards import Timing, default_models_dir
from app.realtime import REALTIME, RealtimeRule

CARDS = sorted(default_models_dir().glob("*.json"))


@pytest.mark.parametrize(("p95", "fps", "meets"), [
    (50.0, 22.0, True),            # both on the line: met
    (49.0, 100.0, True),
    (50.001, 22.0, False),         # p95 just over
    (50.0, 21.999, False),         # throughput just under
    (10.0, 10.0, False),
    (None, 30.0, False), (10.0, None, False),  # missing figures never count
    (math.nan, 30.0, False), (10.0, math.nan, False),
])
def test_rule_boundaries(p95, fps, meets):
    assert REALTIME.meets(p95, fps) is meets


def test_rule_is_p95_50_ms_and_22_fps():
    assert (REALTIME.p95_ms, REALTIME.fps) == (50.0, 22.0)
    assert REALTIME.describe() == "p95 <= 50 ms and >= 22 FPS"
    assert RealtimeRule(p95_ms=10, fps=1).meets(10, 1) and not RealtimeRule(p95_ms=10, fps=1).meets(11, 1)


def test_rule_reads_p95_and_fps_of_card_metrics_not_the_median():
    # a median well inside the budget does not make a model real time when its p95 is over it
    assert not REALTIME.meets_metrics({"latency_ms": {"p50": 30.0, "p95": 60.0}, "fps": 30.0})
    assert REALTIME.meets_metrics({"latency_ms": {"p50": 30.0, "p95": 45.0}, "fps": 30.0})
    assert not REALTIME.meets_metrics({"latency_ms": {"p50": 30.0, "p95": 45.0}})  # no fps on the card
    assert not REALTIME.meets_metrics({})


def test_timing_of_a_pair_adds_latency_and_combines_throughput():
    seg = Timing.from_metrics({"latency_ms": {"p50": 30.0, "p95": 40.0, "mean": 30.0}, "fps": 1000 / 30})
    qc = Timing.from_metrics({"latency_ms": {"p50": 15.0, "p95": 20.0}})  # no fps: 1000 / p50
    pair = seg.then(qc)
    assert (pair.p50_ms, pair.p95_ms) == (45.0, 60.0) and pair.fps == pytest.approx(1000 / 45)
    assert seg.meets() and not pair.meets()
    assert Timing.from_metrics({"latency_ms": {"p50": 1.0}}) is None  # no p95: not measured


def test_there_are_shipped_cards():
    assert CARDS, f"no model cards in {default_models_dir()}"


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_every_shipped_card_says_meets_realtime_by_the_rule(path: Path):
    card = json.loads(path.read_text())
    assert "meets_realtime" in card, f"{path.name} has no meets_realtime"
    assert card["meets_realtime"] == REALTIME.meets_metrics(card["metrics"]), path.name


def test_card_writer_applies_the_rule_whatever_the_caller_says(tmp_path):
    pytest.importorskip("torch")
    from search.export.card_writer import write_card
    from tests.app.engine.tiny_models import write_echo_models

    seg_path, _ = write_echo_models(tmp_path)
    card = json.loads(seg_path.read_text())
    card["metrics"]["latency_ms"] = {"p50": 20.0, "p95": 70.0, "mean": 25.0}
    card["metrics"]["fps"] = 40.0
    card["meets_realtime"] = True  # a caller's literal is overruled
    write_card(card, seg_path)
    assert json.loads(seg_path.read_text())["meets_realtime"] is False
    card["metrics"]["latency_ms"]["p95"] = 45.0
    written = write_card(card, seg_path)
    assert written.raw["meets_realtime"] is True
