"""Cine QC: the smoke preset end to end (samples through the app's stages, training, export, pairing),
and the shipped pair working in the app's pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cards import load_card
from app.engine.models import default_models, load_model, qc_for
from app.engine.stages import QcStage, SegStage
from search.methods.cine_qc.config import preset
from search.methods.cine_qc.data import qc_split
from search.methods.cine_qc.run import run, seg_dice_ci

MODELS = Path(__file__).resolve().parents[3] / "models"
SEG_ID = "cine-rtdnas-ga-n7"


@pytest.fixture
def models_dir(tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    for f in MODELS.glob(f"{SEG_ID}.*"):
        if f.suffix in (".onnx", ".json"):
            shutil.copy(f, out / f.name)
    card = json.loads((out / f"{SEG_ID}.json").read_text())
    card.pop("pairs_with", None)
    (out / f"{SEG_ID}.json").write_text(json.dumps(card, indent=2) + "\n")
    return out


@pytest.mark.slow
def test_smoke_run_ships_a_paired_qc_model_the_pipeline_runs(tmp_path, models_dir, monkeypatch):
    monkeypatch.setenv("CARDIAC_RT_CACHE", str(tmp_path / "cache"))
    cfg = preset("smoke")
    report = run(cfg, tmp_path / "run", models_dir=models_dir)
    qc_id = f"{SEG_ID}-qc-smoke"
    assert report["shipped"]["id"] == qc_id
    assert set(report["patients"]) == {"train", "val", "test"}
    seg_card = load_card(models_dir / f"{SEG_ID}.json")
    assert seg_card.pairs_with == qc_id
    fresh = seg_card.metrics["dice_fresh_patients"]
    assert fresh["patients"] == report["patients"]["test"] and fresh["ci95"][0] <= fresh["mean"] <= fresh["ci95"][1]
    qc_card = qc_for(seg_card, models_dir)
    assert qc_card is not None and qc_card.role == "qc" and qc_card.modality == "cine"
    assert 0 <= qc_card.metrics["qc_mae"] <= 1
    assert qc_card.metrics["qc_patients"] == report["patients"]["test"]
    assert "case_list_sha256" in qc_card.raw["data"]["split"]["test"]
    assert not any("phantom-cine-s" in json.dumps(v) for v in qc_card.raw["data"].values())  # no case ids
    # The app's default for cine now comes with this QC model, and the stages run end to end.
    seg, qc = default_models("cine", models_dir)
    assert seg.id == SEG_ID and qc is not None and qc.id == qc_id
    seg_stage, qc_stage = SegStage(load_model(seg)), QcStage(load_model(qc))
    clip = np.random.default_rng(0).normal(0, 1, (seg_stage.clip_length, 128, 112)).astype(np.float32)
    from app.engine.preprocess import preprocess

    value = qc_stage.run(seg_stage.segment(preprocess(clip, seg)))
    assert 0.0 <= value <= 1.0
    # Resuming reuses the samples and the trained weights: the same test scores.
    again = run(cfg, tmp_path / "run", models_dir=models_dir, ship=False)
    assert again["test_torch"] == report["test_torch"]


def test_split_is_by_patient_and_deterministic():
    from app.data.case import Case

    cases = [Case(case_id=f"p{i:02d}", modality="cine", frames=np.zeros((2, 1, 32, 32), np.float32), labels=None,
                  label_map={0: "background"}, spacing_mm=(1.0, 1.0), frame_rate=25.0,
                  quality_bin=("good", "medium", "poor")[i % 3]) for i in range(24)]
    cfg = preset("default")
    a, b = qc_split(cases, cfg), qc_split(list(reversed(cases)), cfg)
    assert {k: [c.case_id for c in v] for k, v in a.items()} == {k: [c.case_id for c in v] for k, v in b.items()}
    ids = [c.case_id for part in a.values() for c in part]
    assert len(ids) == len(set(ids)) == 24
    assert {c.quality_bin for c in a["test"]} == {"good", "medium", "poor"}


def test_seg_dice_interval_is_over_patients():
    from search.methods.cine_qc.data import Samples

    dice = np.array([0.9, 0.9, 0.5, 0.5], np.float32)
    s = Samples(image=np.zeros((4, 1, 2, 2)), probs=np.zeros((4, 2, 2, 2)), uncertainty=np.zeros((4, 1, 2, 2)),
                dice=dice, case=np.array([0, 0, 1, 1]), quality_bin=np.array(["good"] * 4), case_ids=["a", "b"])
    ci = seg_dice_ci(s)
    assert ci["patients"] == 2 and ci["mean"] == pytest.approx(0.7)
    assert ci["ci95"][0] >= 0.5 and ci["ci95"][1] <= 0.9


def _noise_case(n_t: int, n_z: int, shape: tuple[int, int], seed: int):
    """A labelled cine case of noise frames and random labels (the samples' plumbing, not their values)."""
    from app.data.case import Case

    rng = np.random.default_rng(seed)
    return Case(case_id="p00", modality="cine", frames=rng.normal(100, 30, (n_t, n_z, *shape)).astype(np.float32),
                labels=rng.integers(0, 4, (n_t, n_z, *shape)).astype(np.uint8),
                label_map={0: "background", 1: "RV", 2: "MYO", 3: "LV"}, spacing_mm=(1.0, 1.0), frame_rate=25.0,
                quality_bin="good")


def test_streaming_model_samples_carry_state_round_the_looping_cycle():
    """A streaming seg model is stepped frame by frame, twice round the cycle, and sampled on the second
    round: each sample equals a fresh runner fed every frame since the reset, in order."""
    from app.engine.types import Frame
    from search.methods.cine_qc.data import case_samples

    card = load_card(MODELS / "cine-rtdnas-ga-n7-stream.json")
    n_t, n_z = 5, 2
    case = _noise_case(n_t, n_z, (64, 48), seed=1)
    cfg = preset("smoke", frame_stride=2, slices=(0, 1))
    got = case_samples(case, SegStage(load_model(card)), cfg)
    assert got["probs"].shape[0] == n_z * 3  # frames 0, 2, 4 of each slice
    # Sample 1 is slice 0, frame 2 of the second round: 5 + 3 frames after the reset.
    manual = SegStage(load_model(card))
    seg = None
    for k in range(n_t + 3):
        seg = manual.segment(manual.prepare(Frame(index=k, image=case.frames[k % n_t, 0], t_arrival=0,
                                                   meta={"slice": 0, "case": "p00"}), None),
                             Frame(index=k, image=case.frames[k % n_t, 0], t_arrival=0, meta={"slice": 0, "case": "p00"}))
    np.testing.assert_allclose(got["probs"][1].astype(np.float32), seg.probs[0], atol=2e-3)
    # ... and differs from the same frame seen straight after a reset (the state matters).
    cold = SegStage(load_model(card))
    f = Frame(index=0, image=case.frames[2, 0], t_arrival=0, meta={"slice": 0, "case": "p00"})
    assert not np.allclose(cold.segment(cold.prepare(f, None), f).probs[0], seg.probs[0], atol=2e-3)


def test_per_frame_model_samples_are_each_frame_alone():
    """A per-frame cine model (input (1, 1, H, W), the U-net 2D baseline) gets QC samples too: frame t alone,
    preprocessed as the pipeline preprocesses it, whatever came before it."""
    from app.engine.preprocess import preprocess
    from search.methods.cine_qc.data import case_samples

    card = load_card(MODELS / "baseline-unet2d-d3-if16.json")
    assert card.clip_length == 1 and len(card.input_shape) == 4
    n_t, n_z = 4, 2
    case = _noise_case(n_t, n_z, (128, 112), seed=2)
    got = case_samples(case, SegStage(load_model(card)), preset("smoke", frame_stride=2, slices=(0, 1)))
    assert got["probs"].shape == (n_z * 2, 4, 128, 112) and got["image"].shape == (n_z * 2, 1, 128, 112)
    alone = SegStage(load_model(card)).segment(preprocess(case.frames[2, 1], card))  # sample 3: slice 1, frame 2
    np.testing.assert_allclose(got["probs"][3].astype(np.float32), alone.probs[0], atol=2e-3)
    assert np.all((got["dice"] >= 0) & (got["dice"] <= 1))


def _cine_cards(tmp_path, pairs_with="cine-rtdnas-ga-n7-stream-128x112-qc"):
    out = tmp_path / "models"
    out.mkdir()
    for name in ("cine-rtdnas-ga-n7", "cine-rtdnas-ga-n7-stream"):
        card = json.loads((MODELS / f"{name}.json").read_text())
        (out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    # the challenger: the streaming card as the (retired, no longer shipped) 128x112 model would carry it
    card = json.loads((MODELS / "cine-rtdnas-ga-n7-stream.json").read_text())
    card.update(id="cine-rtdnas-ga-n7-stream-128x112", pairs_with=pairs_with)
    (out / "cine-rtdnas-ga-n7-stream-128x112.json").write_text(json.dumps(card, indent=2) + "\n")
    return out


@pytest.mark.parametrize("ours, meets, promoted", [(0.77, True, True), (0.70, True, False), (0.77, False, False)])
def test_challenger_becomes_the_only_cine_default_when_it_beats_the_incumbent(tmp_path, ours, meets, promoted):
    from search.methods.cine_qc.ship import promote_default

    models = _cine_cards(tmp_path)
    path = models / "cine-rtdnas-ga-n7-stream-128x112.json"
    raw = json.loads(path.read_text())
    raw["meets_realtime"] = meets
    path.write_text(json.dumps(raw))
    before = {p.name: p.read_text() for p in models.glob("*.json")}
    seg, incumbent = load_card(path), load_card(models / "cine-rtdnas-ga-n7-stream.json")
    got = promote_default(seg, {"mean": ours, "ci95": [ours - 0.03, ours + 0.03], "patients": 30}, incumbent,
                          {"mean": 0.74, "ci95": [0.71, 0.77], "patients": 30}, models)
    assert got is promoted
    flags = {p.stem: json.loads(p.read_text()).get("default", False) for p in models.glob("*.json")}
    if promoted:
        assert flags == {"cine-rtdnas-ga-n7": False, "cine-rtdnas-ga-n7-stream": False,
                         "cine-rtdnas-ga-n7-stream-128x112": True}
        assert "0.740" in json.loads(path.read_text())["default_reason"]
    else:
        assert {p.name: p.read_text() for p in models.glob("*.json")} == before
