"""bench/skeleton_latency.py: structure and ratios of the untrained-skeleton timing (never wall-clock thresholds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.bench_module import load_bench


def test_specs_and_both_baselines_timed_together_with_ratios_to_unet16(tmp_path: Path) -> None:
    bench = load_bench("skeleton_latency")
    out = tmp_path / "lat.json"
    assert bench.main(["/2:8c2-16c2", "8c1-16c2", "--size", "32", "--warmup", "0", "--repeats", "2",
                       "--threads", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert set(rows) == {"U-net(16)", "U-net(8)", "/2:8c2-16c2", "8c1-16c2"}
    assert rows["U-net(16)"]["ratio_to_unet16"] == 1.0
    for name, r in rows.items():
        assert r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] and r["macs"] > 0, name
        assert r["ratio_to_unet16"] == pytest.approx(r["p50_ms"] / rows["U-net(16)"]["p50_ms"])
    assert rows["/2:8c2-16c2"]["macs"] < rows["U-net(8)"]["macs"] < rows["U-net(16)"]["macs"]
    md = out.with_suffix(".md").read_text()
    assert "| /2:8c2-16c2 |" in md and "x U-net(16)" in md and doc["machine"] in md


def test_a_bad_spec_or_a_size_it_cannot_divide_is_refused_by_name(tmp_path: Path) -> None:
    bench = load_bench("skeleton_latency")
    with pytest.raises(SystemExit):
        bench.main(["8c2-16q2", "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match=r"'/2:8c2-16c2-32c2' needs an input size divisible by 8"):
        bench.main(["/2:8c2-16c2-32c2", "--size", "36", "--repeats", "1", "--out", str(tmp_path / "y.json")])
