"""bench/msnas_pick.py: the per-seed table of ours n=1 picked vs the argmax and MS-NAS n=4 (no times asserted)."""

from __future__ import annotations

import json

import pytest

from tests.bench.bench_module import load_bench

mp = load_bench("msnas_pick")


def _row(seed, n4, n1, pick, ms=None):
    from search.methods.msnas_hw.config import PickConfig, preset

    run = {"seed": seed, "folder": f"runs/s{seed}", "test_patients": 4,
           "cfg": preset("default", seed=seed).with_pick(PickConfig(candidates=3)),
           "results": {k: {"dice": {"mean": v}, "params": 10} for k, v in zip(mp.ROWS, (n4, n1, pick))},
           "pick": {"picked": 1, "bound_ms": 9.0,
                    "candidates": [{"source": "argmax", "path": "top", "lut_ms": 4.0, "val_dice": .5},
                                   {"source": "sampled", "path": "drawn", "lut_ms": 8.0, "val_dice": .6},
                                   {"source": "sampled", "path": "top", "lut_ms": 12.0}]}}
    return mp.seed_row(run, ms)


def test_gaps_changes_and_targets_are_the_runs_arithmetic():
    rows = [_row(0, .83, .77, .79, {"msnas_n4": 100.0, "ours_n1": 20.0, "ours_n1_pick": 35.0}),
            _row(1, .80, .795, .80, {"msnas_n4": 100.0, "ours_n1": 25.0, "ours_n1_pick": 25.0})]
    assert rows[0]["gap"]["ours_n1"] == pytest.approx(.06) and rows[0]["picked_minus_argmax"] == pytest.approx(.02)
    assert rows[0]["ratio_to_msnas_n4"] == {"ours_n1": .2, "ours_n1_pick": .35}
    assert rows[0]["picked"] == {"index": 1, "source": "sampled", "path": "drawn", "lut_ms": 8.0, "bound_ms": 9.0,
                                 "trained": 2, "candidates": 3}
    s = mp.summary(rows)
    assert s["ours_n1"]["mean_gap"] == pytest.approx(.0325) and s["ours_n1"]["max_gap"] == pytest.approx(.06)
    assert not s["ours_n1"]["dice_target_met_every_seed"] and s["ours_n1"]["latency_target_met_every_seed"]
    assert not s["ours_n1_pick"]["latency_target_met_every_seed"]  # 0.35 on seed 0
    assert s["picked_minus_argmax"] == {"mean": pytest.approx(.0125), "min": pytest.approx(.005),
                                        "max": pytest.approx(.02)}
    assert "max_ratio" not in mp.summary([_row(0, .8, .7, .75)])["ours_n1"]


def test_bench_reads_a_smoke_pick_run_and_times_its_networks(tmp_path, capsys, monkeypatch):
    from search.cli import main

    run = tmp_path / "run"
    assert main(["msnas-hw", "--preset", "smoke", "--out", str(run), "--rows", "msnas_n4", "ours_n1", "ours_n1_pick",
                 "--cell-candidates", "2", "--candidate-steps", "1"]) == 0
    out = tmp_path / "report"
    assert mp.main([str(run), "--out", str(out), "--rounds", "1", "--runs-per-block", "1", "--threads", "1"]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    (row,) = doc["rows"]
    assert row["seed"] == 0 and set(row["ms"]) == set(mp.ROWS) and all(v > 0 for v in row["ms"].values())
    results = {k: json.loads((run / "rows" / k / "result.json").read_text())["dice"]["mean"] for k in mp.ROWS}
    assert row["dice"] == pytest.approx(results)
    text = out.with_suffix(".md").read_text()
    assert "| 0 |" in text and "1 rounds x 1 runs, 1 threads" in text
    assert "--preset smoke" in text and "(2 steps)" in text and "1 test patients" in text and "4x32x32 clip" in text
    assert mp.main([str(run), "--out", str(out), "--no-timing"]) == 0
    assert "not timed" in out.with_suffix(".md").read_text()
    # --fresh-patients: the same trained networks on fresh phantom patients (the fresh seed, indices 0..n-1)
    import numpy as np

    import search.train.clips as clips
    from bench.fresh_draws import FRESH_SEED

    rendered, render = [], clips.render_case
    monkeypatch.setattr(clips, "render_case", lambda data, i: rendered.append((data.seed, i)) or render(data, i))
    assert mp.main([str(run), "--out", str(out), "--no-timing", "--fresh-patients", "2", "--threads", "1"]) == 0
    assert rendered == [(FRESH_SEED, 0), (FRESH_SEED, 1)]
    fresh = json.loads(out.with_suffix(".json").read_text())["rows"][0]["fresh"]
    assert fresh["patients"] == 2 and fresh["phantom_seed"] == FRESH_SEED
    assert all(len(fresh["dice"][k]["per_patient"]) == 2 for k in mp.ROWS)
    for k in mp.ROWS[1:]:
        diff = np.subtract(fresh["dice"]["msnas_n4"]["per_patient"], fresh["dice"][k]["per_patient"])
        assert fresh["gap"][k]["mean"] == pytest.approx(float(np.nanmean(diff)))
    assert "## On 2 fresh phantom patients" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit, match="--fresh-patients must be >= 1"):
        mp.main([str(run), "--out", str(out), "--no-timing", "--fresh-patients", "0"])
    with pytest.raises(SystemExit, match="not a finished msnas-hw run"):
        mp.main([str(tmp_path / "nothing"), "--out", str(out)])
