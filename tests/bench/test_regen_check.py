"""bench/regen_check.py: cards of two models folders compared id by id, and a chain's stage times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.bench_module import load_bench


def _card(cid: str, sha: str, *, dice=None, mae=None, spec="16c2", p50=4.0, newest=None) -> dict:
    metrics = {"latency_ms": {"p50": p50}}
    if dice is not None:
        metrics["dice"] = {"mean": dice, "per_class": {}}
    if newest is not None:
        metrics["dice_newest_frame"] = {"mean": newest}
    if mae is not None:
        metrics.update(qc_mae=mae, qc_pearson=0.8)
    return {"id": cid, "role": "qc" if mae is not None else "seg", "method": "m", "onnx_sha256": sha,
            "architecture": {"kind": "k", "args": {"spec": spec}}, "metrics": metrics, "data": {"seed": 0}}


def _write(folder: Path, *cards: dict) -> Path:
    folder.mkdir()
    for card in cards:
        (folder / f"{card['id']}.json").write_text(json.dumps(card))
    (folder / "latency").mkdir()  # a latency table folder is not a card
    (folder / "notes.json").write_text(json.dumps({"not": "a card"}))
    return folder


def test_compare_counts_identical_changed_and_missing(tmp_path) -> None:
    bench = load_bench("regen_check")
    shipped = _write(tmp_path / "a", _card("same", "s1", dice=0.9), _card("retrained", "s2", dice=0.80),
                     _card("qc", "s3", mae=0.05), _card("gone", "s4", dice=0.7))
    regen = _write(tmp_path / "b", _card("same", "s1", dice=0.9), _card("retrained", "x2", dice=0.83),
                   _card("qc", "x3", mae=0.06, spec="other"), _card("new", "s5", dice=0.6))
    result = bench.compare(bench.read_cards(shipped), bench.read_cards(regen))
    c = result["counts"]
    assert (c["shipped"], c["regenerated"], c["in_both"]) == (4, 4, 3)
    assert c["same_onnx"] == 1 and c["same_architecture"] == 2  # qc's spec changed
    assert c["only_shipped"] == ["gone"] and c["only_regenerated"] == ["new"]
    assert c["max_abs_dice_delta"] == pytest.approx(0.03)
    rows = {r["id"]: r for r in result["rows"]}
    assert rows["retrained"]["dice"] == {"shipped": 0.80, "regenerated": 0.83, "delta": pytest.approx(0.03)}
    assert rows["qc"]["qc_mae"]["delta"] == pytest.approx(0.01) and rows["qc"]["dice"]["delta"] is None
    assert "same_onnx" not in rows["gone"] and rows["gone"]["role"] == "seg"


def test_stage_times_against_the_two_hour_target() -> None:
    bench = load_bench("regen_check")
    quick = bench.stage_times({"profile": {"status": "done", "seconds": 10.0},
                               "baselines": {"status": "done", "seconds": 3600.0}})
    assert quick["total_s"] == 3610.0 and quick["within_target"] is True
    slow = bench.stage_times({"a": {"status": "done", "seconds": 7000.0}, "b": {"status": "done", "seconds": 300.0}})
    assert slow["within_target"] is False


def test_main_writes_json_and_markdown(tmp_path, capsys) -> None:
    bench = load_bench("regen_check")
    shipped = _write(tmp_path / "a", _card("clip", "s1", dice=0.9, newest=0.85))
    regen = _write(tmp_path / "b", _card("clip", "s1", dice=0.9, newest=0.85))
    stages = tmp_path / "stages.json"
    stages.write_text(json.dumps({"profile": {"status": "done", "seconds": 60.0}}))
    out = tmp_path / "out" / "check.json"
    assert bench.main(["--shipped", str(shipped), "--regenerated", str(regen), "--stages", str(stages),
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["counts"]["same_onnx"] == 1 and result["stages"]["total_s"] == 60.0
    md = out.with_suffix(".md").read_text()
    assert "0.850 / 0.850 (newest frame)" in md and "1.0 min in all" in md and "met" in md
    assert bench.main(["--shipped", str(tmp_path / "nowhere"), "--regenerated", str(regen), "--out", str(out)]) == 2
    assert "no such models folder" in capsys.readouterr().err


def test_an_unreadable_card_names_its_file(tmp_path) -> None:
    bench = load_bench("regen_check")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "broken.json").write_text("{")
    with pytest.raises(SystemExit, match="broken.json"):
        bench.read_cards(folder)
