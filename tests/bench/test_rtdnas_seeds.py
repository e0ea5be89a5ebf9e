"""bench/rtdnas_seeds.py on the smoke preset: two seeds, the argmax cells and the capped ones, one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.bench_module import load_bench


@pytest.mark.slow
def test_two_smoke_seeds_give_a_spread_and_the_capped_cells_obey_the_cap(tmp_path: Path) -> None:
    from search.core.ops import PARAMETER_FREE_OPS

    bench = load_bench("rtdnas_seeds")
    out, js, md = tmp_path / "seeds", tmp_path / "r.json", tmp_path / "r.md"
    assert bench.main(["--preset", "smoke", "--seeds", "0", "1", "--paths", "2", "--cap", "0", "--out", str(out),
                       "--train-seeds", "2", "--json", str(js), "--md", str(md)]) == 0
    result = json.loads(js.read_text())
    assert [s["seed"] for s in result["seeds"]] == [0, 1]
    # one latency table, profiled by the first seed and shared by the second
    assert (out / "shared" / "latency_table.json").is_file()
    assert json.loads((out / "seed1" / "latency_table.json").read_text()) == json.loads(
        (out / "shared" / "latency_table.json").read_text())
    for s in result["seeds"]:
        for v in ("argmax", "cap0"):
            r = s[v]
            assert len(r["paths"]) == 2 and 0.0 <= r["dice"]["mean"] <= 1.0 and r["latency"]["p50_ms"] > 0
        assert all(op not in PARAMETER_FREE_OPS for c in s["cap0"]["cells"].values() for _, _, op in c["edges"])
        # the capped derivation reuses the seed's search: its cells keep the argmax cells' edges
        for k, c in s["cap0"]["cells"].items():
            assert [e[:2] for e in c["edges"]] == [e[:2] for e in s["argmax"]["cells"][k]["edges"]]
    for s in result["seeds"]:  # every final network retrained once more under another training seed, beside it
        for v in ("argmax", "cap0"):
            reps = s[v]["replicas"]
            assert [r["train_seed"] for r in reps] == [0, 1]
            assert s[v]["replica_dice"]["mean"] == pytest.approx((reps[0]["dice"]["mean"] + reps[1]["dice"]["mean"]) / 2)
            folder = out / f"seed{s['seed']}" / "retrain" / v / "t1"
            # replica 1 really trained under another master seed (its own config and losses), on the same patients
            assert json.loads((folder / "config.json").read_text())["seed"] == s["seed"] + bench.TRAIN_SEED_STRIDE
            own = out / f"seed{s['seed']}" / ("cap0" if v == "cap0" else "") / "rows" / "ga_n2" / "result.json"
            assert (json.loads((folder / "rows" / "ga_n2" / "result.json").read_text())["train_losses"]
                    != json.loads(own.read_text())["train_losses"])
    for v in ("argmax", "cap0"):
        means = [s[v]["replica_dice"]["mean"] for s in result["seeds"]]
        assert result["summary"][v]["over_training_seeds"]["spread"] == pytest.approx(max(means) - min(means))
        dice = [s[v]["dice"]["mean"] for s in result["seeds"]]
        assert result["summary"][v]["spread"] == pytest.approx(max(dice) - min(dice))
        assert result["summary"][v]["target_met"] is False  # two seeds never meet a 3-seed target
    text = md.read_text()
    assert "smoke preset" in text and "| cap0 | 1 |" in text and "spread" in text and "over training seeds" in text
    # resumable: a second call reads every stage back
    assert bench.main(["--preset", "smoke", "--seeds", "0", "1", "--paths", "2", "--cap", "0", "--out", str(out),
                       "--train-seeds", "2", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["summary"] == result["summary"]


def test_a_final_network_the_preset_does_not_derive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="derives N_l"):
        load_bench("rtdnas_seeds").main(["--preset", "smoke", "--seeds", "0", "--paths", "7", "--out", str(tmp_path)])


def test_the_budget_pick_takes_the_most_paths_that_fit_the_bound() -> None:
    bench = load_bench("rtdnas_seeds")
    derivation = {"by_n": {"1": {"latency_ms": 7.0}, "2": {"latency_ms": 12.0}, "3": {"latency_ms": 17.0},
                           "5": {"latency_ms": 35.0}, "7": {"latency_ms": 52.0}}}
    assert bench.pick_paths(derivation, 50.0, 7, "fixed") == 7
    assert bench.pick_paths(derivation, 50.0, 7, "budget") == 5
    assert bench.pick_paths(derivation, 60.0, 7, "budget") == 7
    assert bench.pick_paths(derivation, 60.0, 3, "budget") == 3  # never more than asked
    assert bench.pick_paths(derivation, 5.0, 7, "budget") == 1  # nothing fits: the fewest paths


def test_the_replica_summary_is_the_mean_and_sample_std_over_training_seeds() -> None:
    rs = load_bench("rtdnas_seeds").replica_summary([0.80, 0.76, 0.84])
    assert rs["mean"] == pytest.approx(0.80) and rs["std"] == pytest.approx(0.04) and rs["spread"] == pytest.approx(0.08)
    assert load_bench("rtdnas_seeds").replica_summary([0.7])["std"] == 0.0


@pytest.mark.slow
def test_the_picked_cells_come_from_the_candidates_and_every_candidate_is_also_retrained(tmp_path: Path) -> None:
    bench = load_bench("rtdnas_seeds")
    out, js, md = tmp_path / "seeds", tmp_path / "r.json", tmp_path / "r.md"
    argv = ["--preset", "smoke", "--seeds", "0", "--paths", "2", "--cell-candidates", "3", "2", "--candidate-steps", "1",
            "--retrain-candidates", "--fresh-patients", "2", "--out", str(out), "--json", str(js), "--md", str(md)]
    assert bench.main(argv) == 0
    result = json.loads(js.read_text())
    s = result["seeds"][0]
    pick = s["pick3"]["pick"]
    assert len(pick["candidates"]) == 3 and pick["candidates"][0]["cells"] == s["argmax"]["cells"]
    assert s["pick3"]["cells"] == pick["candidates"][pick["picked"]]["cells"]  # the final network uses the pick
    # the search is not rerun: the pick folder holds no rounds, only the pick, its rows and the final network
    assert (out / "seed0" / "pick3" / "pick.json").is_file() and not (out / "seed0" / "pick3" / "rounds").exists()
    for c in pick["candidates"]:
        if c["within_ub"]:  # every candidate's full retraining, on the test patients (argmax / picked reuse theirs)
            assert 0.0 <= c["test_dice_full"] <= 1.0
            if c["index"] == pick["picked"]:
                assert c["test_dice_full"] == s["pick3"]["dice"]["mean"]
    assert result["summary"]["pick3"]["dice"] == [s["pick3"]["dice"]["mean"]]
    text = md.read_text()
    assert "## `pick3`: the candidates" in text and "| pick3 | 0 |" in text and "**yes**" in text
    # a pick among more draws the same candidates first, and reuses the smaller pick's trained ones (hard links)
    small = s["pick2"]["pick"]["candidates"]
    assert [c["cells"] for c in small] == [c["cells"] for c in pick["candidates"][:2]]
    for c in small:
        if c["within_ub"]:
            assert c["val_dice"] == pick["candidates"][c["index"]]["val_dice"]
            a, b = (out / "seed0" / f"pick{k}" / "rows" / f"pick_c{c['index']}" / "weights.pt" for k in (2, 3))
            assert a.stat().st_ino == b.stat().st_ino
    assert "## `pick2`: the candidates" in text
    assert "test Dice, full retraining" in text
    # both final networks scored again on the same fresh patients (a phantom seed in no split), paired
    for v in ("argmax", "pick3"):
        f = s[v]["fresh"]
        assert f["phantom_seed"] == bench.fresh_draws().FRESH_SEED and len(f["per_patient"]) == 2
        assert f["ci95"][0] <= f["mean"] <= f["ci95"][1]
    diff = [a - b for a, b in zip(s["pick3"]["fresh"]["per_patient"], s["argmax"]["fresh"]["per_patient"])]
    assert s["pick3"]["fresh_vs_argmax"]["mean"] == pytest.approx(sum(diff) / 2)
    assert result["summary"]["pick3"]["fresh"]["dice"] == [s["pick3"]["fresh"]["mean"]]
    assert "fresh phantom patients" in text


@pytest.mark.slow
def test_a_pick_with_drawn_gene_pools_is_its_own_variant_and_reuses_the_argmax_candidate(tmp_path: Path) -> None:
    bench = load_bench("rtdnas_seeds")
    out, js, md = tmp_path / "seeds", tmp_path / "r.json", tmp_path / "r.md"
    base = ["--preset", "smoke", "--seeds", "0", "--paths", "3", "--cell-candidates", "3", "--candidate-steps", "1",
            "--out", str(out)]
    assert bench.main(base) == 0  # the pick on the heaviest paths first (pick3)
    assert bench.main([*base, "--candidate-paths", "sampled", "--json", str(js), "--md", str(md)]) == 0
    result = json.loads(js.read_text())
    s = result["seeds"][0]
    assert bench.variant_names(None, [3], "sampled") == ["argmax", "pick3s"] and set(s) >= {"argmax", "pick3s"}
    pick = s["pick3s"]["pick"]
    chosen = pick["candidates"][pick["picked"]]
    assert all("pool" in c for c in pick["candidates"][1:]) and "pool" not in pick["candidates"][0]
    # the final network is the picked candidate's: its cells, its number of paths
    assert s["pick3s"]["cells"] == chosen["cells"] and s["pick3s"]["n_paths"] == chosen["n_paths"]
    a, b = (out / "seed0" / v / "rows" / "pick_c0" / "weights.pt" for v in ("pick3", "pick3s"))
    assert a.stat().st_ino == b.stat().st_ino  # the argmax candidate is the same network in both picks: not retrained
    text = md.read_text()
    assert "## `pick3s`: the candidates" in text and "| pick3s | 0 |" in text and "cells and gene pool" in text
    assert "| 0 | 1 | sampled | sampled |" in text and result["candidate_paths"] == "sampled"


def test_the_kinds_of_pick_share_the_candidates_that_are_the_same_network() -> None:
    bench = load_bench("rtdnas_seeds")
    assert [bench.pick_variant(4, p) for p in ("heaviest", "sampled", "both")] == ["pick4", "pick4s", "pick4b"]
    assert bench._shared_candidates(4, "heaviest") == {}
    assert bench._shared_candidates(4, "sampled") == {0: ("pick4", 0)}
    assert bench._shared_candidates(3, "both") == {0: ("pick3", 0), 1: ("pick3", 1), 2: ("pick3", 2),
                                                   3: ("pick3s", 1), 4: ("pick3s", 2)}


def test_the_argmax_candidate_is_reused_only_from_a_pick_trained_the_same_way(tmp_path: Path) -> None:
    from dataclasses import replace

    from search.methods.rtdnas.config import PickConfig, preset

    bench = load_bench("rtdnas_seeds")
    heaviest = replace(preset("smoke"), pick=PickConfig(candidates=3, train_steps=1, n_paths=3))
    folder = tmp_path / "pick3"
    (folder / "rows" / "pick_c0").mkdir(parents=True)
    drawn = replace(heaviest, pick=replace(heaviest.pick, paths="sampled"))
    assert not bench._same_candidate_training(folder, drawn)  # no config: nothing known, nothing reused
    (folder / "config.json").write_text(json.dumps(heaviest.to_dict()))
    assert bench._same_candidate_training(folder, drawn)
    for other in (replace(drawn, pick=replace(drawn.pick, train_steps=2)), replace(drawn, pick=replace(drawn.pick, n_paths=2)),
                  replace(drawn, seed=1)):
        assert not bench._same_candidate_training(folder, other)


@pytest.mark.parametrize("flag", [["--train-seeds", "0"], ["--retrain-steps", "0"], ["--free-op-dropout", "1"],
                                  ["--gdas-tau", "1", "0"], ["--cell-candidates", "1"], ["--candidate-steps", "0"],
                                  ["--retrain-candidates"], ["--fresh-patients", "1"], ["--candidate-steps", "5"],
                                  ["--candidate-paths", "sampled"], ["--candidate-paths", "widest"]])
def test_bad_replica_options_are_refused(flag: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        load_bench("rtdnas_seeds").main(["--preset", "smoke", "--out", str(tmp_path), *flag])


def test_the_ranking_check_uses_average_ranks_and_says_when_it_cannot_rank() -> None:
    spearman = load_bench("rtdnas_seeds")._spearman

    def cands(val, full):
        return [{"val_dice": v, "test_dice_full": f} for v, f in zip(val, full)]

    assert spearman(cands([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])) == "1.00 over 3"
    assert spearman(cands([0.1, 0.2, 0.3], [0.7, 0.6, 0.5])) == "-1.00 over 3"
    assert spearman(cands([0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.7, 0.8])) == "0.95 over 4"  # tie: average ranks
    assert spearman(cands([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])).startswith("n/a (all equal")
    assert spearman(cands([0.1, 0.2], [0.5, 0.6])).startswith("n/a (fewer than 3")
    assert spearman([{"test_dice_full": 0.5}, *cands([0.1, 0.2], [0.5, 0.6])]).startswith("n/a")  # untrained left out
