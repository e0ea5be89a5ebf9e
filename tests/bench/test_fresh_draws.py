"""bench/fresh_draws.py on a tiny run: 2 fresh echo patients, one shipped echo model, 4 frames each.

Structure and consistency only (no Dice or latency thresholds): the report names its seed, the
card's figures and the fresh ones, and the bootstrap CI contains the fresh mean.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.bench.bench_module import load_bench

pytestmark = pytest.mark.timeout(180)

MODEL = "echo-segqc-hw-seg"


def _load_bench():
    return load_bench("fresh_draws")


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory):
    from app.engine.models import list_models

    if MODEL not in {c.id for c in list_models("echo")}:
        pytest.skip(f"{MODEL} is not shipped in models/")
    out = tmp_path_factory.mktemp("fresh")
    code = bench.main(["--patients", "2", "--models", MODEL, "--echo-frames", "4", "--bootstrap", "200",
                       "--out", str(out)])
    assert code == 0
    return json.loads((out / "fresh_draws.json").read_text()), (out / "fresh_draws.md").read_text()


def test_report_structure_and_ci_contains_mean(bench, report):
    result, md = report
    assert result["seed"] == bench.FRESH_SEED and str(bench.FRESH_SEED) not in result["training_seeds"]
    assert result["machine"]["before"]["description"] and "load_avg" in result["machine"]["after"]
    assert result["date"] and result["elapsed_s"] > 0
    patients = result["datasets"]["echo-contrast"]["patients"]
    assert len(patients) == 2 and {p["bin"] for p in patients} == {"poor", "medium"}  # quotas 1 / 1 / 0
    assert all(p["case_id"].startswith(f"phantom-echo-contrast-s{bench.FRESH_SEED}-") for p in patients)
    (model,) = result["models"]
    assert model["id"] == MODEL and "error" not in model
    assert model["validate_models"]["seg"] == MODEL and model["qc_model"] == model["validate_models"]["qc"]
    fresh = model["fresh"]
    assert fresh["patients"] == 2 and fresh["labelled_frames"] == 8 and fresh["errors"] == 0
    lo, hi = fresh["ci95"]
    assert lo <= fresh["dice"] <= hi
    assert set(fresh["per_bin"]) == {"poor", "medium", "good"} and fresh["per_bin"]["good"]["patients"] == 0
    assert model["card"]["dice"] is not None
    assert model["verdict"] == bench.verdict(model["card"]["dice"], fresh["dice"], fresh["ci95"])
    qc = model["qc"]
    assert qc["frames"] == 8 and qc["card_mae"] is not None and qc["fresh_mae"] is not None
    assert "card_patients" not in model  # its card gives a count of test patients, not their ids
    assert f"| {MODEL} | echo |" in md and str(bench.FRESH_SEED) in md


def test_helpers(bench):
    assert bench.quotas(20) == {"poor": 7, "medium": 7, "good": 6}
    assert bench.spread_slices(8, 2) == [2, 5] and bench.spread_slices(8, 8) == list(range(8))
    assert bench.verdict(0.83, 0.71, [0.67, 0.75]) == "card optimistic by 0.120"
    assert bench.verdict(0.70, 0.71, [0.67, 0.75]) == "holds"
    assert bench.verdict(0.60, 0.71, [0.67, 0.75]).startswith("holds (fresh above card")
    card = SimpleNamespace(modality="cine", raw={"data": {"split": {"test": ["phantom-cine-s2020-0011",
                                                                          "phantom-cine-s2020-0002"]}}})
    assert bench.card_test_patients(card) == (2020, [2, 11])
    card.raw["data"]["split"]["test"] = 20  # a count, not the patients
    assert bench.card_test_patients(card) is None
    lo, hi = bench.bootstrap_ci([0.2, 0.4, 0.9], n_boot=500, seed=1)
    assert lo <= 0.5 <= hi and bench.bootstrap_ci([0.2, 0.4, 0.9], n_boot=500, seed=1) == [lo, hi]


def test_refuses_a_training_seed(bench, tmp_path):
    assert bench.main(["--patients", "1", "--seed", "2020", "--models", MODEL, "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "fresh_draws.json").exists()
