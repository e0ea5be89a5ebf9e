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
    both = ("profile", "baselines")
    quick = bench.stage_times({"profile": {"status": "done", "seconds": 10.0},
                               "baselines": {"status": "done", "seconds": 3600.0}}, both)
    assert quick["total_s"] == 3610.0 and quick["within_target"] is True and quick["not_run"] == []
    partial = bench.stage_times({"profile": {"status": "done", "seconds": 10.0}}, both)
    assert partial["within_target"] is None and partial["not_run"] == ["baselines"]  # not judged
    slow = bench.stage_times({"profile": {"status": "done", "seconds": 7300.0}}, both)
    assert slow["within_target"] is False  # a partial run already over 2 h is a miss
    from search.chain.all_cli import OPTIONAL, STAGES

    assert bench.stage_times({})["not_run"] == [s for s in STAGES if s not in OPTIONAL]  # the default chain's
    lean = {s: {"status": "done", "seconds": 60.0} for s in STAGES if s not in OPTIONAL}
    assert bench.stage_times(lean)["within_target"] is True  # a whole default run is judged without the retired


def test_main_writes_json_and_markdown(tmp_path, capsys) -> None:
    bench = load_bench("regen_check")
    shipped = _write(tmp_path / "a", _card("clip", "s1", dice=0.9, newest=0.85))
    regen = _write(tmp_path / "b", _card("clip", "s1", dice=0.9, newest=0.85))
    stages = tmp_path / "stages.json"
    from search.chain.all_cli import STAGES

    stages.write_text(json.dumps({s: {"status": "done", "seconds": 60.0 / len(STAGES)} for s in STAGES}))
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


def test_since_keeps_only_the_cards_the_run_wrote(tmp_path) -> None:
    bench = load_bench("regen_check")
    old, new = _card("untouched", "s1", dice=0.9), _card("rerun", "x2", dice=0.8)
    old["created"], new["created"] = "2026-12-04T09:00:00+00:00", "2026-12-07T07:00:00+00:00"
    shipped = _write(tmp_path / "a", _card("untouched", "s1", dice=0.9), _card("rerun", "s2", dice=0.7))
    regen = _write(tmp_path / "b", old, new)
    assert set(bench.read_cards(regen, "2026-12-07T06:45:18Z")) == {"rerun"}
    out = tmp_path / "c.json"
    assert bench.main(["--shipped", str(shipped), "--regenerated", str(regen), "--since", "2026-12-07T06:45:18Z",
                       "--out", str(out)]) == 0
    counts = json.loads(out.read_text())["counts"]
    assert counts["in_both"] == 1 and counts["only_shipped"] == [] and counts["same_onnx"] == 0


def _onnx(path: Path, weight: list[float], node_name: str) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array(weight, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name=node_name)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(weight)])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(weight)])], [w])
    onnx.save(helper.make_model(graph), str(path))


def test_same_weights_reads_the_initializers_not_the_bytes(tmp_path) -> None:
    bench = load_bench("regen_check")
    _onnx(tmp_path / "a.onnx", [1.0, 2.0], "add")
    _onnx(tmp_path / "b.onnx", [1.0, 2.0], "renamed")  # other bytes, same weights
    _onnx(tmp_path / "c.onnx", [1.0, 2.5], "add")
    assert (tmp_path / "a.onnx").read_bytes() != (tmp_path / "b.onnx").read_bytes()
    assert bench.same_weights(tmp_path / "a.onnx", tmp_path / "b.onnx") is True
    assert bench.same_weights(tmp_path / "a.onnx", tmp_path / "c.onnx") is False
    assert bench.same_weights(tmp_path / "a.onnx", tmp_path / "missing.onnx") is None
    shipped, regen = _write(tmp_path / "s", _card("m", "s1", dice=0.9)), _write(tmp_path / "r", _card("m", "s2", dice=0.9))
    (shipped / "m.onnx").write_bytes((tmp_path / "a.onnx").read_bytes())
    (regen / "m.onnx").write_bytes((tmp_path / "b.onnx").read_bytes())
    result = bench.compare(bench.read_cards(shipped), bench.read_cards(regen), (shipped, regen))
    assert result["counts"]["same_onnx"] == 0 and result["counts"]["same_weights"] == 1
