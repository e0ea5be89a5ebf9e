"""bench/msnas_capacity.py: MS-NAS n=1 and the picked ours n=1 at the paper's width, trained in a pick run's
harness beside its rows (no times asserted)."""

from __future__ import annotations

import json

import pytest

from tests.bench.bench_module import load_bench

cap = load_bench("msnas_capacity")


def test_capacity_bench_trains_both_diagnostics_in_the_runs_harness_and_resumes(tmp_path, monkeypatch):
    from search.cli import main
    from search.core.genotypes import MultiscaleGenotype
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    run = tmp_path / "run"
    assert main(["msnas-hw", "--preset", "smoke", "--out", str(run), "--rows", "msnas_n4", "ours_n1", "ours_n1_pick",
                 "--cell-candidates", "2", "--candidate-steps", "1"]) == 0
    trained = []
    original = MsnasHwExperiment.train_row

    def recording(self, row, genotype, **kw):
        if not (self.out / "rows" / row.key / "result.json").is_file():
            trained.append((row.key, kw["seed_row"].key, self.cfg.width_divisor))
        return original(self, row, genotype, **kw)

    monkeypatch.setattr(MsnasHwExperiment, "train_row", recording)
    work, out = tmp_path / "work", tmp_path / "report"
    args = [str(run), "--work", str(work), "--out", str(out), "--fresh-patients", "1", "--rounds", "1",
            "--runs-per-block", "1", "--threads", "1"]
    assert cap.main(args) == 0
    smoke_divisor = json.loads((run / "config.json").read_text())["width_divisor"]
    assert trained == [("msnas_n1", "ours_n1", smoke_divisor), ("ours_n1_pick", "ours_n1", 1)]  # ours n=1's seed
    doc = json.loads(out.with_suffix(".json").read_text())
    (row,) = doc["rows"]
    assert set(row["ms"]) == set(cap.RUN_ROWS + cap.EXTRA) and all(v > 0 for v in row["ms"].values())
    n4 = json.loads((run / "rows" / "msnas_n4" / "result.json").read_text())
    n1 = json.loads((work / "msnas_n1" / "seed0" / "rows" / "msnas_n1" / "result.json").read_text())
    g4, g1 = (MultiscaleGenotype.from_json(json.dumps(r["genotype"])) for r in (n4, n1))
    assert len(g1.paths) == 1 and g1.paths[0] in g4.paths and g1.cells == g4.cells  # MS-NAS n=4's cells, one path
    wide = json.loads((work / "pick_wide" / "seed0" / "rows" / "ours_n1_pick" / "result.json").read_text())
    picked = json.loads((run / "rows" / "ours_n1_pick" / "result.json").read_text())
    assert wide["genotype"] == picked["genotype"] and wide["trained_width"]["trained"] == picked["trained_width"]["paper"]
    for kind in ("msnas_n1", "pick_wide"):  # the run's split: the same test patients
        assert json.loads((work / kind / "seed0" / "split.json").read_text()) == json.loads((run / "split.json").read_text())
    assert row["test"]["msnas_n1"] == n1["dice"]["mean"] and row["test"]["msnas_n4"] == n4["dice"]["mean"]
    gap = row["fresh_gap"]["msnas_n1"]["mean"]
    assert gap == pytest.approx(row["fresh"]["msnas_n4"]["mean"] - row["fresh"]["msnas_n1"]["mean"])  # 1 patient
    text = out.with_suffix(".md").read_text()
    assert "| 0 |" in text and "MS-NAS n=1" in text and "1 fresh phantom patients" in text
    trained.clear()
    assert cap.main(args) == 0 and trained == []  # resumes: nothing trained again
    with pytest.raises(SystemExit, match="--fresh-patients must be >= 1"):
        cap.main([str(run), "--fresh-patients", "0"])
