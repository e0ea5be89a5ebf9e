"""``python -m search retime``: a folder's cards re-timed together, the load they were timed under on the card,
refused on a busy machine; and every exported card says when, how and under what load it was timed."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from app.cards import load_card
from search.baselines.registry import get_baseline
from search.baselines.unet import UNet
from search.cli import main as search_main
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.export.retime import RetimeRefused, retime_cards
from search.train.seg_outputs import SegmentationWithUncertainty

QUIET = 1e9  # the tests' machine may be busy: the load guard is tested on its own


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A folder with two small exported seg cards."""
    folder = tmp_path_factory.mktemp("cards")
    rng = np.random.default_rng(0)
    for i, model_id in enumerate(("a", "b")):
        torch.manual_seed(i)
        unet = UNet(dataclasses.replace(get_baseline("unet8-resnet18").unet, initial_filters=4, depth=3))
        content = CardContent(model_id, "echo", "seg", "baseline-unet", [TensorSpec("image", (1, 3, 32, 32))],
                              [TensorSpec("probs", (1, 2, 32, 32)), TensorSpec("uncertainty", (1, 1, 32, 32))],
                              {0: "background", 1: "myocardium"}, {"kind": "scale", "scale": 1 / 255}, "NCHW",
                              {"source": "test"})
        export_model(SegmentationWithUncertainty(unet), content, folder, [{"image": rng.random(
            (1, 3, 32, 32), dtype=np.float32)}], evaluate=lambda p: {"dice": {"mean": 0.8}}, latency_repeats=2)
    return folder


@pytest.fixture
def folder(exported, tmp_path):
    out = tmp_path / "models"
    shutil.copytree(exported, out)
    return out


def _raw(folder, model_id):
    return json.loads((folder / f"{model_id}.json").read_text())


def test_an_exported_card_says_when_how_and_under_what_load_it_was_timed(exported):
    ctx = _raw(exported, "a")["metrics"]["latency_context"]
    assert ctx["how"].startswith("at export: 2 back-to-back runs")
    assert ctx["measured"][:2] == "20" and "T" in ctx["measured"]
    assert ctx["load_avg_before"] is None or len(ctx["load_avg_before"]) == 3


def test_retime_rewrites_the_figures_keeps_the_previous_ones_and_recomputes_meets_realtime(folder):
    raw = _raw(folder, "a")
    raw["metrics"]["latency_ms"] = {"p50": 900.0, "p95": 4500.0, "mean": 1500.0}  # as if timed on a busy machine
    raw["metrics"]["fps"] = 0.7
    raw["meets_realtime"] = False
    (folder / "a.json").write_text(json.dumps(raw))
    rows = retime_cards(folder, rounds=2, runs=3, warmup=1, max_load=QUIET, say=lambda s: None)
    assert [r.model_id for r in rows] == ["a", "b"]
    a = _raw(folder, "a")
    m = a["metrics"]
    assert m["latency_previous"]["latency_ms"] == {"p50": 900.0, "p95": 4500.0, "mean": 1500.0}
    assert m["latency_previous"]["fps"] == 0.7
    assert 0 < m["latency_ms"]["p50"] <= m["latency_ms"]["p95"] < 4500.0
    assert m["fps"] == pytest.approx(1000.0 / m["latency_ms"]["mean"], rel=0.01)
    assert m["latency_context"]["how"].startswith("python -m search retime: 2 rounds x 3 back-to-back runs")
    assert "(2)" in m["latency_context"]["how"]  # timed together with the folder's other card
    assert a["meets_realtime"] is True and rows[0].meets_realtime and rows[0].previous_p95 == 4500.0
    assert a["onnx_sha256"] == raw["onnx_sha256"] and a["created"] == raw["created"]  # the model is the same
    assert load_card(folder / "a.json").verify().raw["metrics"]["latency_ms"] == m["latency_ms"]
    assert m["dice"] == raw["metrics"]["dice"]  # nothing but the latency changes


def test_retime_twice_keeps_only_the_figures_it_replaced(folder):
    retime_cards(folder, ids=["a"], rounds=1, runs=2, warmup=0, max_load=QUIET, say=lambda s: None)
    first = _raw(folder, "a")["metrics"]
    retime_cards(folder, ids=["a"], rounds=1, runs=2, warmup=0, max_load=QUIET, say=lambda s: None)
    second = _raw(folder, "a")["metrics"]
    assert second["latency_previous"]["latency_ms"] == first["latency_ms"]
    assert "latency_previous" not in second["latency_previous"]
    assert "(1)" in second["latency_context"]["how"]  # --ids: only that card timed


def test_retime_refuses_on_a_busy_machine_and_writes_nothing(folder, monkeypatch):
    before = {i: (folder / f"{i}.json").read_text() for i in ("a", "b")}
    monkeypatch.setattr("app.engine.benchmark.load_average", lambda: [9.0, 8.0, 7.0])
    with pytest.raises(RetimeRefused, match=r"load average 9\.00 is above 1\.50.*--max-load"):
        retime_cards(folder, max_load=1.5, say=lambda s: None)
    assert {i: (folder / f"{i}.json").read_text() for i in ("a", "b")} == before


def test_retime_names_an_unknown_card_and_an_empty_folder(folder, tmp_path):
    with pytest.raises(RetimeRefused, match=r"no card zzz \(cards: a, b\)"):
        retime_cards(folder, ids=["zzz"], max_load=QUIET)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RetimeRefused, match="no model cards"):
        retime_cards(tmp_path / "empty", max_load=QUIET)


def test_the_cli_prints_old_and_new_figures_and_names_a_card_that_does_not_verify(folder, capsys):
    assert search_main(["retime", "--models-dir", str(folder), "--rounds", "1", "--runs", "2",
                        "--max-load", str(QUIET)]) == 0
    out = capsys.readouterr().out
    assert "| model | previous p50 / p95 ms | new p50 / p95 ms | meets 50 ms / 22 FPS |" in out
    assert "| a |" in out and "| b |" in out
    (folder / "b.onnx").write_bytes(b"not the exported model")
    assert search_main(["retime", "--models-dir", str(folder), "--max-load", str(QUIET)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("retime: ") and "b.onnx" in err
    assert search_main(["retime", "--models-dir", str(folder), "--rounds", "0"]) == 2


def test_the_keys_a_retime_keeps_as_previous_are_the_ones_latency_fields_writes():
    from search.export.latency import LATENCY_KEYS, latency_fields
    from search.latency.measure import LatencyStats

    stats = LatencyStats(1.0, 2.0, 1.5, 666.7, 10, 2, "onnxruntime x CPUExecutionProvider")
    assert tuple(latency_fields(stats, how="t", load_before=None)) == LATENCY_KEYS
