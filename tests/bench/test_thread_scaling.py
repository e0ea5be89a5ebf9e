"""bench/thread_scaling.py: arms at 1 and N threads per workload, interleaved, on networks rebuilt from the cards
(structure only, never wall-clock values)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.bench.bench_module import load_bench


def test_one_round_times_every_workload_at_both_thread_counts(tmp_path) -> None:
    bench = load_bench("thread_scaling")
    before = torch.get_num_threads()
    out = tmp_path / "scaling.json"
    try:
        assert bench.main(["--threads", "2", "--rounds", "1", "--steps", "1", "--batch", "2", "--no-search",
                           "--models", "cine-skeleton-hw-qc", "echo-segqc-hw-seg", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    result = json.loads(out.read_text())
    rows = {r["workload"]: r for r in result["rows"]}
    assert set(rows) == {"cine-skeleton-hw-qc", "echo-segqc-hw-seg"}
    for r in rows.values():
        assert set(r["median_s"]) == {"1", "2"} and all(v > 0 for v in r["median_s"].values())
        assert r["speedup"] == pytest.approx(r["median_s"]["1"] / r["median_s"]["2"])
    assert rows["echo-segqc-hw-seg"]["input"] == "(2, 3, 96, 96)"  # the card's input, the given batch
    assert "probs (2, 4, 128, 112)" in rows["cine-skeleton-hw-qc"]["input"]
    assert "| echo-segqc-hw-seg |" in out.with_suffix(".md").read_text()


def test_the_search_workload_and_clip_inputs() -> None:
    bench = load_bench("thread_scaling")
    bench.segqc_search_step("smoke", 0)(0)  # one smoke supernet iteration: weight, arch and QC steps
    step, shape = bench.training_step("cine-rtdnas-ga-n7-stream", bench.ROOT / "models", 0, batch=1)
    assert shape == "(1, 1, 20, 64, 48)"  # a streaming net trains on clips of its clip model's length
    with pytest.raises(ValueError, match="only cine QC"):
        bench.training_step("echo-segqc-hw-qc", bench.ROOT / "models", 0)
