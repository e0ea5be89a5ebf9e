"""bench/cine_skeleton_runs.py on a smoke cine-skeleton run: one row per run, its figures the run's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.methods.cine_skeleton.config import preset
from search.methods.cine_skeleton.run import run
from tests.bench.bench_module import load_bench


def test_one_row_per_run_with_the_runs_own_figures(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "smoke-s0"
    report = run(preset("smoke"), folder, models_dir=tmp_path / "models")
    out = tmp_path / "docs" / "runs"
    assert load_bench("cine_skeleton_runs").main([str(folder), "--out", str(out)]) == 0
    row, = json.loads(out.with_suffix(".json").read_text())["runs"]
    found = json.loads((folder / "search.json").read_text())
    assert row["genotype"] == found["genotype"] == report["search"]["genotype"]
    assert row["card_dice"] == report["card"]["dice"]["mean"] and row["blocks"] == ["c2", "c1"]
    assert row["converged"] is False and row["predicted_ms"] == found["predicted_ms"]["derived"]
    text = out.with_suffix(".md").read_text()
    assert f"`{found['genotype']}`" in text and "**no**" in text
    assert (out.parent / "runs-smoke-s0-entropy.png").is_file() == (folder / "entropy.png").is_file()


def test_a_folder_that_is_not_a_finished_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="search.json: missing"):
        load_bench("cine_skeleton_runs").main([str(tmp_path), "--out", str(tmp_path / "r")])


def test_a_search_only_run_is_a_row_without_card_figures(tmp_path: Path) -> None:
    folder = tmp_path / "smoke-s0-long"
    run(preset("smoke", search_steps=5), folder, search_only=True)
    out = tmp_path / "runs"
    assert load_bench("cine_skeleton_runs").main([str(folder), "--out", str(out)]) == 0
    row, = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert row["search_only"] and row["card_dice"] is None and row["arch_steps"] == 5 and row["seed"] == 0
    assert "- (search only)" in out.with_suffix(".md").read_text()
