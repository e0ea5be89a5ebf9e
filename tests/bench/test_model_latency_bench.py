"""bench/model_latency.py on the tiny engine models: structure and ratios (never wall-clock thresholds)."""


import pytest

from tests.app.engine.tiny_models import write_cine_model, write_echo_models
from tests.bench.bench_module import load_bench


def _bench():
    return load_bench("model_latency")


def test_every_model_is_timed_and_compared_with_its_baseline(tmp_path):
    write_echo_models(tmp_path)
    write_cine_model(tmp_path)
    bench = _bench()
    result = bench.run(tmp_path, threads=[1], rounds=3, seed=0)
    rows = result["by_threads"]["1"]["models"]
    assert set(rows) == {"tiny-echo-seg", "tiny-echo-qc", "tiny-cine-seg"}
    for mid, row in rows.items():
        assert row["p50_ms"] > 0 and row["p95_ms"] >= row["p50_ms"]
        assert row["baseline"] == mid  # each tiny model is its modality's only baseline
        assert row["ratio_to_baseline"] == pytest.approx(1.0)
    text = bench.markdown(result)
    assert "tiny-cine-seg" in text and "4x32x28" in text


def test_main_writes_json(tmp_path):
    import json

    models = tmp_path / "models"
    models.mkdir()
    write_echo_models(models)
    out = tmp_path / "lat.json"
    assert _bench().main(["--models-dir", str(models), "--threads", "1", "--rounds", "2", "--out", str(out)]) == 0
    assert set(json.loads(out.read_text())["by_threads"]["1"]["models"]) == {"tiny-echo-seg", "tiny-echo-qc"}
