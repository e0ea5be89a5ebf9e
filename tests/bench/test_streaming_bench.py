"""bench/streaming_bench.py on a tiny causal network: structure and ratios (never wall-clock thresholds)."""

import json

from tests.app.engine.stream_models import TINY_GENOTYPE, tiny_architecture
from tests.bench.bench_module import load_bench


def _bench():
    return load_bench("streaming_bench")


def test_clip_and_stream_are_timed_interleaved_at_each_thread_count(tmp_path):
    card = tmp_path / "tiny.json"
    card.write_text(json.dumps({"id": "tiny", "genotype": TINY_GENOTYPE, "input": {"shape": [1, 1, 4, 16, 16]},
                                "architecture": tiny_architecture(causal=False).to_json()}))
    bench = _bench()
    result = bench.run(card, threads=(1, 2), rounds=3, warmup=1, shipped=False)
    assert set(result["models"]) == {"clip@1", "stream@1", "clip@2", "stream@2"}
    assert all(s["n"] == 3 and s["p95_ms"] >= s["p50_ms"] > 0 for s in result["models"].values())
    assert set(result["ratios"]) == {"1", "2"} and result["states"] > 0
    assert "streaming per frame / clip per window" in bench.markdown(result)
