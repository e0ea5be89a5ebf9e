"""bench/precision_bench.py: fp32 and bf16 arms per workload, interleaved (structure only, never wall-clock values)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.bench.bench_module import load_bench


def test_one_round_times_every_workload_in_both_precisions_and_leaves_fp32(tmp_path) -> None:
    from search.train import precision

    bench = load_bench("precision_bench")
    before = torch.get_num_threads()
    out = tmp_path / "precision.json"
    try:
        assert bench.main(["--threads", "1", "--rounds", "1", "--steps", "1", "--preset", "smoke",
                           "--models", "cine-skeleton-hw-qc", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    assert precision.current() == "fp32"
    result = json.loads(out.read_text())
    rows = {r["workload"]: r for r in result["rows"]}
    assert set(rows) == {"segqc-search", "cine-skeleton-hw-qc"}
    for r in rows.values():
        assert set(r["median_s"]) == {"fp32", "bf16"} and all(v > 0 for v in r["median_s"].values())
        assert r["speedup"] == pytest.approx(r["median_s"]["fp32"] / r["median_s"]["bf16"])
    assert result["native_bf16"] == precision.native_bf16()
    assert "| cine-skeleton-hw-qc |" in out.with_suffix(".md").read_text()
