"""bench/shipped_latency_spread.py: the spread / error arithmetic on known numbers, the seeded rounds, and a
tiny end-to-end run (one segqc-hw pair card at 32x32, a tiny baseline) for structure (never wall-clock values)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.bench.bench_module import load_bench

SIZE = 32
ENTRY_MS = 0.05  # every table entry
CAL = {"scale": 2.0, "per_op_ms": 0.01, "offset_ms": 1.0}  # the stored segqc calibration


def _bench():
    return load_bench("shipped_latency_spread")


# -- the arithmetic ---------------------------------------------------------------------------------
def test_spread_and_error_on_known_numbers() -> None:
    figs = _bench().spread_and_error([10.0, 12.0, 9.0, 11.0, 10.5], 11.5)
    assert figs["n_rounds"] == 5 and figs["median_ms"] == 10.5
    assert (figs["min_ms"], figs["max_ms"]) == (9.0, 12.0)
    assert figs["rel_spread"] == pytest.approx(3.0 / 10.5)
    assert figs["cv"] == pytest.approx(np.std([10, 12, 9, 11, 10.5], ddof=1) / 10.5)
    assert figs["error"] == pytest.approx(11.5 / 10.5 - 1)  # +9.5 %
    assert figs["within_band"] is True
    assert figs["error_exceeds_spread"] is False  # 9.5 % < half of 28.6 %
    assert figs["predicted_in_round_range"] is True


def test_an_error_beyond_a_narrow_spread() -> None:
    figs = _bench().spread_and_error([10.0, 10.2, 9.9], 8.0)
    assert figs["median_ms"] == 10.0 and figs["rel_spread"] == pytest.approx(0.03)
    assert figs["error"] == pytest.approx(-0.2)
    assert figs["within_band"] is False and figs["error_exceeds_spread"] is True
    assert figs["predicted_in_round_range"] is False


def test_band_and_spread_edges_count_as_inside() -> None:
    bench = _bench()
    on_band = bench.spread_and_error([10.0], 11.0)  # 11 / 10 - 1 is a hair above 0.1 in floating point
    assert on_band["within_band"] is True and on_band["cv"] is None and on_band["rel_spread"] == 0.0
    assert on_band["error_exceeds_spread"] is True  # one round: no spread at all
    half = bench.spread_and_error([8.0, 10.0, 12.0], 12.0)  # error 0.2 = spread 0.4 / 2
    assert half["error"] == pytest.approx(0.2) and half["error_exceeds_spread"] is False
    assert half["predicted_in_round_range"] is True


def test_no_prediction_leaves_the_error_empty_and_bad_rounds_raise() -> None:
    bench = _bench()
    figs = bench.spread_and_error([5.0, 6.0], None)
    assert figs["rel_spread"] == pytest.approx(1.0 / 5.5) and figs["median_ms"] == 5.5
    assert all(figs[k] is None for k in ("predicted_ms", "error", "within_band", "error_exceeds_spread",
                                         "predicted_in_round_range"))
    for bad in ([], [1.0, 0.0], [float("nan")]):
        with pytest.raises(ValueError):
            bench.spread_and_error(bad, 1.0)


def test_summary_counts_only_predicted_networks() -> None:
    bench = _bench()
    rows = [bench.spread_and_error([10.0, 10.2, 9.9], 8.0),  # outside the band, beyond the spread
            bench.spread_and_error([10.0, 12.0, 9.0, 11.0, 10.5], 11.5),  # inside both
            bench.spread_and_error([5.0, 6.0], None)]
    summ = bench.summarize(rows)
    assert summ["n"] == 3 and summ["n_predicted"] == 2
    assert summ["n_within_band"] == 1 and summ["n_error_exceeds_spread"] == 1 and summ["n_predicted_in_round_range"] == 1
    assert summ["median_rel_spread"] == pytest.approx(1.0 / 5.5) and summ["max_rel_spread"] == pytest.approx(3.0 / 10.5)
    assert bench.summarize([])["median_rel_spread"] is None


def test_rounds_run_every_network_once_in_a_seeded_order() -> None:
    bench = _bench()
    calls: list[str] = []
    clock = {"a": iter([1.0, 2.0, 3.0]), "b": iter([4.0, 5.0, 6.0]), "c": iter([7.0, 8.0, 9.0])}

    def run_one(name: str) -> float:
        calls.append(name)
        return next(clock[name])

    seen = []
    timed = bench.time_rounds(["a", "b", "c"], run_one, rounds=3, seed=4, on_round=lambda r, rec: seen.append(r))
    assert timed["round_medians_ms"] == {"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0], "c": [7.0, 8.0, 9.0]}
    assert seen == [0, 1, 2] and len(timed["rounds"]) == 3
    assert calls == [n for rec in timed["rounds"] for n in rec["order"]]
    rng = np.random.default_rng(4)
    for rec in timed["rounds"]:
        assert rec["order"] == [["a", "b", "c"][i] for i in rng.permutation(3)]
        assert set(rec["medians_ms"]) == {"a", "b", "c"}
    with pytest.raises(ValueError):
        bench.time_rounds(["a"], run_one, rounds=0, seed=0)


def test_not_timed_drops_timed_baselines_and_adds_their_reason() -> None:
    skipped = [{"id": "b1", "reason": "handcrafted"}, {"id": "b2", "reason": "handcrafted"},
               {"id": "s", "reason": "streaming model"}]
    assert _bench().not_timed(skipped, ["b1"], {"b2": "streaming or INT8: not timed"}) == [
        {"id": "b2", "reason": "handcrafted; --baselines: streaming or INT8: not timed"},
        {"id": "s", "reason": "streaming model"}]


# -- a tiny run -------------------------------------------------------------------------------------
def _card(folder: Path, card_id: str, *, role: str, architecture: dict, inputs: list[str], outputs: list[str],
          **extra) -> None:
    shape = [1, 3, SIZE, SIZE]
    raw = {
        "id": card_id, "modality": "echo", "role": role, "method": "segqc-hw",
        "input": {"name": inputs[0], "shape": shape, "layout": "NCHW", "dtype": "float32"},
        "inputs": [{"name": n, "shape": shape} for n in inputs],
        "outputs": [{"name": n, "shape": [1]} for n in outputs],
        "classes": {"0": "background", "1": "myocardium"}, "metrics": {}, "data": {}, "onnx_sha256": "0" * 64,
        "genotype": architecture.get("genotype"), "architecture": architecture, **extra,
    }
    (folder / f"{card_id}.json").write_text(json.dumps(raw))


def _models_dir(tmp_path: Path) -> Path:
    """A segqc-hw seg + QC pair (smoke widths, 32x32) and a tiny handcrafted cine baseline with its ONNX file."""
    from search.methods.spaces import register_all
    from tests.app.engine.tiny_models import write_cine_model
    from tests.search.latency.toy_cards import toy_segqc_pair

    register_all()
    folder = tmp_path / "models"
    folder.mkdir()
    seg, qc = toy_segqc_pair()
    _card(folder, "echo-toy-seg", role="seg", architecture=seg.to_json(), inputs=["image"],
          outputs=["probs", "uncertainty"], pairs_with="echo-toy-qc")
    _card(folder, "echo-toy-qc", role="qc", architecture=qc.to_json(), inputs=["image", "probs", "uncertainty"],
          outputs=["dice"])
    write_cine_model(folder)  # tiny-cine-seg, method baseline-tiny
    return folder


def _table(tmp_path: Path, models: Path) -> tuple[Path, int]:
    """A latency table with every key of the shipped pair at ENTRY_MS and CAL stored for segqc; its op count."""
    from app.cards import discover
    from search.latency.lut import LatencyTable
    from search.report.shipped_latency import shipped_networks

    nets, _ = shipped_networks(["segqc"], discover(models))
    (net,) = nets
    table = LatencyTable(path=str(tmp_path / "lut.json"))
    for k in set(net.keys):
        table.set(k, ENTRY_MS)
    table.meta.update(threads=1, calibration={"by_space": {"segqc": CAL}, "samples_per_space": 6, "seed": 0})
    table.save(tmp_path / "lut.json")
    return tmp_path / "lut.json", len(net.keys)


def test_tiny_run_writes_every_figure(tmp_path: Path) -> None:
    import torch

    torch_threads = torch.get_num_threads()
    models = _models_dir(tmp_path)
    table, n_ops = _table(tmp_path, models)
    out = tmp_path / "spread.json"
    argv = ["--models-dir", str(models), "--calibration", str(table), "--rounds", "2", "--warmup", "0", "--runs", "1",
            "--threads", "1", "--baselines", "--out", str(out)]
    try:
        assert _bench().main(argv) == 0
    finally:
        torch.set_num_threads(torch_threads)
    result = json.loads(out.read_text())
    assert set(result["networks"]) == {"echo-toy-seg", "tiny-cine-seg"}
    net = result["networks"]["echo-toy-seg"]
    assert net["kind"] == "searched" and net["space"] == "segqc" and net["cards"] == ["echo-toy-seg", "echo-toy-qc"]
    assert net["input_shape"] == [1, 3, SIZE, SIZE] and net["onnx_nodes"] > 0
    assert net["n_ops"] == n_ops and net["sum_ms"] == pytest.approx(n_ops * ENTRY_MS)
    assert net["calibration_space"] == "segqc" and net["calibration"] == CAL
    assert net["predicted_ms"] == pytest.approx(CAL["scale"] * n_ops * ENTRY_MS + CAL["per_op_ms"] * n_ops
                                                + CAL["offset_ms"])
    assert len(net["round_medians_ms"]) == 2 and all(ms > 0 for ms in net["round_medians_ms"])
    # the figures are spread_and_error's on the recorded round medians and prediction
    assert {k: net[k] for k in _bench().spread_and_error([1.0], 1.0)} == pytest.approx(
        _bench().spread_and_error(net["round_medians_ms"], net["predicted_ms"]))
    base = result["networks"]["tiny-cine-seg"]
    assert base["kind"] == "baseline" and base["predicted_ms"] is None and base["error"] is None
    assert len(base["round_medians_ms"]) == 2
    assert result["summary"]["n"] == 1 and result["summary"]["n_predicted"] == 1 and result["summary_all"]["n"] == 2
    assert [len(r["order"]) for r in result["rounds"]] == [2, 2]
    assert result["settings"] == {**result["settings"], "rounds": 2, "warmup": 0, "runs": 1, "ort_threads": 1,
                                  "torch_threads": 1, "allow_spinning": False}
    assert result["calibration"]["path"] == str(table) and result["calibration"]["table_threads"] == 1
    assert {s["id"] for s in result["skipped"]} == set()  # the QC partner is timed with its seg card
    for key in ("load_avg_start", "load_avg_end", "uptime_start", "started", "finished", "machine"):
        assert key in result
    text = out.with_suffix(".md").read_text()
    assert "| echo-toy-seg + echo-toy-qc | segqc | 3x32x32 |" in text and "tiny-cine-seg (baseline)" in text
    assert "error > spread/2" in text and "1 intra-op threads" in text


def test_missing_calibration_file_is_named(tmp_path: Path) -> None:
    models = _models_dir(tmp_path)
    with pytest.raises(SystemExit, match="--calibration"):
        _bench().main(["--models-dir", str(models), "--calibration", str(tmp_path / "none.json"), "--rounds", "1",
                       "--runs", "1", "--threads", "1", "--out", str(tmp_path / "x.json")])
