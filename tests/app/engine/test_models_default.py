"""The default-model choice: this machine's benchmark figures first, broken models never, warnings once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app.cards import ModelCardError, load_card
from app.engine import benchmark as bm
from app.engine.models import default_models, find_model, list_models, meets_budget, timing_of
from tests.app.engine.tiny_models import write_echo_models


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty benchmark cache folder for this test (never the user's own)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(bm.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def two_pairs(tmp_path) -> Path:
    """Two echo seg + QC pairs: a searched one (better Dice, the default by its cards) and a baseline."""
    folder = tmp_path / "models"
    write_echo_models(folder, seg_id="aa-echo-seg", qc_id="aa-echo-qc", method="segqc-hw")
    write_echo_models(folder, seg_id="zz-echo-seg", qc_id="zz-echo-qc", method="baseline-tiny")
    for name, dice in (("aa-echo-seg", 0.8), ("zz-echo-seg", 0.6)):
        path = folder / f"{name}.json"
        raw = json.loads(path.read_text())
        raw["metrics"]["dice"] = {"mean": dice}
        path.write_text(json.dumps(raw, indent=1))
    return folder


def _inject(folder: Path, seg_id: str, qc_id: str | None, samples_ms: list[float], **key) -> None:
    """Record figures for a model (pair) in this machine's cache file, as ``--benchmark`` would."""
    cards = [load_card(folder / f"{i}.json") for i in (seg_id, qc_id) if i]
    figures = bm.LocalFigures.load()
    entry = bm.figures_entry(cards, samples_ms, threads=1, warmup=0, measured="2026-12-03T06:50+00:00",
                             state={"uptime_s": 100.0, "load_avg": [0.5, 0.4, 0.3]})
    figures.record(bm.entry_key(*cards, **key), entry)
    figures.save()


def test_cards_decide_without_local_figures(two_pairs, cache):
    seg, qc = default_models("echo", two_pairs)
    assert (seg.id, qc.id) == ("aa-echo-seg", "aa-echo-qc")
    timing, entry = timing_of(seg, qc, bm.LocalFigures.load())
    assert entry is None and timing.p95_ms == pytest.approx(4.0)  # 2 ms + 2 ms on the cards


def test_local_figures_that_miss_the_budget_switch_the_default(two_pairs, cache):
    _inject(two_pairs, "aa-echo-seg", "aa-echo-qc", [80.0] * 20)
    seg, _ = default_models("echo", two_pairs)
    assert seg.id == "zz-echo-seg"
    aa = find_model("aa-echo-seg", two_pairs)
    local = bm.LocalFigures.load()
    assert not meets_budget(aa, find_model("aa-echo-qc", two_pairs), local)
    timing, entry = timing_of(aa, find_model("aa-echo-qc", two_pairs), local)
    assert timing.p95_ms == pytest.approx(80.0) and entry["load_avg"][0] == 0.5
    assert "benchmarked 2026-12-03 06:50 UTC, load 0.50" in bm.describe_entry(entry)
    # figures that meet the budget bring it back
    _inject(two_pairs, "aa-echo-seg", "aa-echo-qc", [10.0] * 20)
    assert default_models("echo", two_pairs)[0].id == "aa-echo-seg"


def test_figures_of_another_file_runtime_or_thread_count_are_not_used(two_pairs, cache):
    _inject(two_pairs, "aa-echo-seg", "aa-echo-qc", [80.0] * 20, threads=97)
    _inject(two_pairs, "aa-echo-seg", "aa-echo-qc", [80.0] * 20, runtime_version="0.0.1")
    assert default_models("echo", two_pairs)[0].id == "aa-echo-seg"
    _inject(two_pairs, "aa-echo-seg", "aa-echo-qc", [80.0] * 20)
    assert default_models("echo", two_pairs)[0].id == "zz-echo-seg"
    # the model file is rebuilt (a new hash on its card): the old figures no longer apply
    path = two_pairs / "aa-echo-seg.json"
    raw = json.loads(path.read_text())
    raw["onnx_sha256"] = "0" * 64
    path.write_text(json.dumps(raw))
    assert bm.LocalFigures.load().lookup(load_card(path), find_model("aa-echo-qc", two_pairs)) is None


def test_unreadable_cache_file_falls_back_to_the_cards(two_pairs, cache, caplog):
    (cache / "benchmarks").mkdir(parents=True)
    bm.default_cache_file().write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert default_models("echo", two_pairs)[0].id == "aa-echo-seg"
        default_models("echo", two_pairs)
    assert sum("ignoring benchmark figures" in r.getMessage() for r in caplog.records) == 1


def test_broken_model_is_never_the_default_and_is_warned_once(two_pairs, cache, caplog):
    with open(two_pairs / "aa-echo-seg.onnx", "ab") as fh:
        fh.write(b"\0")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert default_models("echo", two_pairs)[0].id == "zz-echo-seg"
    said = [r.getMessage() for r in caplog.records if "aa-echo-seg" in r.getMessage()]
    assert len(said) == 1 and "sha256" in said[0] and "aa-echo-seg.onnx" in said[0]


def test_when_every_model_is_broken_loading_the_best_says_why(tmp_path, cache, caplog):
    folder = tmp_path / "m"
    write_echo_models(folder)
    (folder / "tiny-echo-seg.onnx").unlink()
    with caplog.at_level(logging.WARNING):
        seg, _ = default_models("echo", folder)
    assert seg.id == "tiny-echo-seg" and not caplog.records  # not "not choosing": it is the only one
    with pytest.raises(ModelCardError, match="tiny-echo-seg.onnx: model file is missing"):
        seg.verify()


def test_invalid_json_default_card_is_warned_once_naming_the_file(two_pairs, cache, caplog):
    (two_pairs / "aa-echo-seg.json").write_text('{"id": "aa-echo-seg", ')
    with caplog.at_level(logging.WARNING):
        assert default_models("echo", two_pairs)[0].id == "zz-echo-seg"
        list_models("echo", two_pairs)
        find_model("zz-echo-seg", two_pairs)
        default_models("echo", two_pairs)
    said = [r.getMessage() for r in caplog.records if "aa-echo-seg.json" in r.getMessage()]
    assert len(said) == 1 and "not valid JSON" in said[0] and "\n" not in said[0]


def test_missing_folder_says_it_does_not_exist(tmp_path, cache):
    with pytest.raises(ModelCardError, match="no echo segmentation model: the folder does not exist") as err:
        default_models("echo", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_benchmark_times_models_and_pairs_into_the_cache(two_pairs, cache):
    cards = [c.verify() for c in list_models("echo", two_pairs)]
    seen = []
    figures = bm.benchmark(cards, rounds=3, warmup=1, report=lambda label, entry: seen.append(label))
    assert set(seen) == {c.id for c in cards} | {"aa-echo-seg + aa-echo-qc", "zz-echo-seg + zz-echo-qc"}
    path = bm.default_cache_file()
    assert path == cache / "benchmarks" / f"{bm.machine_slug()}.json" and path.is_file()
    doc = json.loads(path.read_text())
    assert len(doc["entries"]) == 6
    by_id = {c.id: c for c in cards}
    entry = bm.LocalFigures.load().lookup(by_id["aa-echo-seg"], by_id["aa-echo-qc"])
    assert entry is not None and entry == figures.entries[bm.entry_key(by_id["aa-echo-seg"], by_id["aa-echo-qc"])]
    lat = entry["latency_ms"]
    assert entry["rounds"] == 3 and 0 < lat["p50"] <= lat["p95"] <= lat["max"] and entry["fps"] > 0
    assert entry["allow_spinning"] is False and entry["onnxruntime"]
    assert {"uptime_s", "load_avg", "measured"} <= set(entry)
    assert [m["id"] for m in entry["models"]] == ["aa-echo-seg", "aa-echo-qc"]


def test_rounds_must_be_positive(two_pairs):
    with pytest.raises(ValueError, match="rounds"):
        bm.time_chain([load_card(two_pairs / "aa-echo-seg.json")], rounds=0)


def test_a_card_marked_default_gives_way_when_this_machine_says_it_is_too_slow(two_pairs, cache):
    path = two_pairs / "zz-echo-seg.json"
    raw = json.loads(path.read_text())
    raw["default"] = True
    path.write_text(json.dumps(raw))
    assert default_models("echo", two_pairs)[0].id == "zz-echo-seg"
    _inject(two_pairs, "zz-echo-seg", "zz-echo-qc", [60.0] * 20)
    assert default_models("echo", two_pairs)[0].id == "aa-echo-seg"


def _clip_models(folder: Path) -> Path:
    """Two cine clip models: one whose card's Dice over every clip position is higher but whose
    newest-frame Dice (what the app shows) is far lower than the other's."""
    from tests.app.engine.tiny_models import write_cine_model

    for model_id, dice, newest in (("aa-clip-collapses", 0.83, 0.37), ("zz-clip-steady", 0.75, 0.72)):
        path = write_cine_model(folder, model_id=model_id)
        raw = json.loads(path.read_text())
        raw["metrics"].update(dice={"mean": dice}, dice_newest_frame={"mean": newest})
        path.write_text(json.dumps(raw, indent=1))
    return folder


def test_clip_models_are_ranked_by_the_dice_of_the_newest_frame(tmp_path, cache):
    folder = _clip_models(tmp_path / "models")
    assert default_models("cine", folder)[0].id == "zz-clip-steady"
    # a card without the newest-frame figure is compared by its Dice over every clip position, as before
    path = folder / "aa-clip-collapses.json"
    raw = json.loads(path.read_text())
    del raw["metrics"]["dice_newest_frame"]
    path.write_text(json.dumps(raw, indent=1))
    assert default_models("cine", folder)[0].id == "aa-clip-collapses"
