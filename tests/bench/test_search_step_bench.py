"""bench/search_step_bench.py at a tiny size: both samplers, every step, ratios, JSON (never wall-clock thresholds)."""

import json

import pytest

from tests.bench.bench_module import load_bench


@pytest.mark.slow
def test_both_samplers_every_step_and_the_json(tmp_path):
    bench = load_bench("search_step_bench")
    out = tmp_path / "steps.json"
    assert bench.main(["--threads", "1", "--rounds", "1", "--steps", "1", "--resolution", "16", "--batch", "2",
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["resolution"], result["batch"], result["torch_threads"]) == (16, 2, 1)
    for sampler in ("darts", "gdas"):
        for step in ("weight", "arch", "qc"):
            row = result["samplers"][sampler][step]
            assert row["steps"] == 1 and row["steps_per_s"] > 0
        assert result["samplers"][sampler]["iteration"]["iterations_per_s"] > 0
    assert set(result["ratio_gdas_over_darts"]) == {"weight", "arch", "qc", "iteration"}
    assert result["machine"]["cpu_count"] and "load_avg" in result["before"]
    assert "GDAS / DARTS" in bench.markdown(result)
