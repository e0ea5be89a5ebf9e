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


def _saved_run(card_dice: float) -> dict:
    """A report as an earlier run wrote it (before ``dice_newest_frame``): one cine clip model."""
    per_bin = {b: {"patients": 1, "dice": 0.35, "qc_mae": None} for b in ("poor", "medium", "good")}
    machine = {"cpu": "test CPU", "description": "test", "load_avg": [0.1, 0.1, 0.1], "uptime": None}
    return {
        "title": "t", "date": "2026-01-01T00:00:00+00:00", "machine": {"before": machine, "after": machine},
        "seed": 160006, "training_seeds": {"0": "x"}, "skipped": [], "elapsed_s": 60.0,
        "settings": {"patients_per_modality": 3, "quality_quotas": {"poor": 1, "medium": 1, "good": 1},
                     "echo_frames": 30, "cine_frames": 20, "bootstrap": {"resamples": 200, "seed": 0},
                     "cine_rendered_slices": 8, "cine_slices": list(range(8)), "slow_ms": 150.0,
                     "slow_cine_slices": [2, 5]},
        "models": [{"id": "tiny-clip", "modality": "cine", "slices": [2, 5], "qc": None, "elapsed_s": 10.0,
                    "card": {"dice": card_dice, "evaluated_on": "x", "dice_fresh_patients": None},
                    "fresh": {"dice": 0.342, "ci95": [0.266, 0.419], "patients": 3, "labelled_frames": 120,
                              "per_bin": per_bin, "per_class": {"LV": 0.2}, "per_slice": {"2": 0.36, "5": 0.32}},
                    "card_patients": {"seed": 0, "case_ids": ["a", "b"], "dice": 0.411},
                    "verdict": "card optimistic by 0.288", "verdict_dice_fresh_patients": None}],
    }


def test_from_json_adds_the_newest_frame_dice_of_clip_cards(bench, tmp_path, capsys):
    from tests.app.engine.tiny_models import write_cine_model

    models = tmp_path / "models"
    path = write_cine_model(models, length=20, model_id="tiny-clip")
    raw = json.loads(path.read_text())
    raw["metrics"].update(dice={"mean": 0.6304}, dice_newest_frame={"mean": 0.3681})
    path.write_text(json.dumps(raw))
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(_saved_run(0.6304)))
    out = tmp_path / "out"
    assert bench.main(["--from-json", str(saved), "--out", str(out), "--models-dir", str(models)]) == 0
    result = json.loads((out / "fresh_draws.json").read_text())
    (model,) = result["models"]
    assert model["card"]["dice_newest_frame"] == 0.3681 and model["verdict_dice_newest_frame"] == "holds"
    assert result["card_fields_filled"]["models"] == ["tiny-clip"]
    md = (out / "fresh_draws.md").read_text()
    assert "| card Dice | card newest-frame Dice |" in md
    assert ("| tiny-clip | cine | 2,5 | 0.630 | 0.368 (holds) | - | 0.411 (n=2, seed 0) | 0.342 [0.266, 0.419] |"
            in md)
    assert "`--from-json`" in md and md == bench.markdown(result)
    # a card that changed since the run (another Dice) is not taken for the one the run checked
    saved.write_text(json.dumps(_saved_run(0.7)))
    assert bench.main(["--from-json", str(saved), "--out", str(out), "--models-dir", str(models)]) == 0
    result = json.loads((out / "fresh_draws.json").read_text())
    assert "dice_newest_frame" not in result["models"][0]["card"] and "card_fields_filled" not in result
    assert "| tiny-clip | cine | 2,5 | 0.700 | - |" in (out / "fresh_draws.md").read_text()


def _scored(model_id, dice_by_patient, slices=(0, 1), modality="cine"):
    """A saved run's model entry (``_saved_run``'s) with its own id, slices and per-patient Dice."""
    model = _saved_run(0.6)["models"][0]
    return {**model, "id": model_id, "modality": modality, "slices": list(slices),
            "patients": [{"case_id": f"p{i}", "dice": d} for i, d in enumerate(dice_by_patient)]}


def test_paired_gaps_pair_by_patient_and_leave_out_models_that_saw_other_slices(bench, tmp_path, capsys):
    ref = _scored("ref", [0.70, 0.80, 0.60, 0.90])
    result = {"models": [ref, _scored("better", [0.75, 0.83, 0.64, 0.88]), _scored("slow", [0.9] * 4, slices=(2,)),
                         _scored("echo", [0.5] * 4, modality="echo")],
              "settings": {"bootstrap": {"resamples": 300, "seed": 0}}}
    rows = bench.paired_gaps(result, "ref", n_boot=300)
    assert [r["model"] for r in rows] == ["better", "slow"]  # only the reference's modality
    better, slow = rows
    assert better["mean_diff"] == pytest.approx(0.025) and better["better_on"] == 3 and better["patients"] == 4
    assert better["ci95"][0] <= 0.025 <= better["ci95"][1]
    assert "why_not" in slow and "[2]" in slow["why_not"]
    md = bench.paired_markdown(rows)
    assert "| better | +0.025 [" in md and "| 3 of 4 |" in md and "| slow | not paired: saw slices [2]" in md
    with pytest.raises(ValueError, match="--paired-to nope: not among the run's scored models"):
        bench.paired_gaps(result, "nope")
    # re-rendered from a saved run: the table is added to the report and kept in its JSON
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps({**_saved_run(0.6), "models": result["models"]}))
    out = tmp_path / "out"
    assert bench.main(["--from-json", str(saved), "--out", str(out), "--paired-to", "ref",
                       "--models-dir", str(tmp_path)]) == 0
    assert "Paired by patient against ref" in (out / "fresh_draws.md").read_text()
    assert json.loads((out / "fresh_draws.json").read_text())["paired"][0]["model"] == "better"
    assert bench.main(["--from-json", str(saved), "--out", str(out), "--paired-to", "nope"]) == 2
