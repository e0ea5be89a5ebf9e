"""bench/streaming_bench.py on a tiny causal network: structure and ratios (never wall-clock thresholds)."""

import importlib.util
import json
from pathlib import Path

from tests.app.engine.stream_models import TINY_GENOTYPE, tiny_architecture

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("streaming_bench", ROOT / "bench" / "streaming_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
