"""segqc-hw's random control: the seeded sampler, the latency matching, the stage configs, the report's table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from search.core.cells import CellSpec
from search.core.decode import decode_cell
from search.core.genotypes import CellGenotype, SegQcGenotype
from search.core.supernets.nasunet import DOWN_SPEC, UP_SPEC
from search.core.supernets.qcnet import CONTRACTING_SPEC, NONSCALING_SPEC
from search.methods.segqc_hw.config import preset
from search.methods.segqc_hw.random_control import (closest, matched_random_genotype, random_candidates,
                                                    random_genotype)


def _alphas_for(spec: CellSpec, cell: CellGenotype) -> list[np.ndarray]:
    """Op logits under which the decoder keeps exactly ``cell``'s edges and ops: a kept edge's op wins its
    softmax, a dropped edge's ``zero`` wins."""
    kept = {(e.src, e.dst): e.op for e in cell.edges}
    alphas = []
    for e, (src, dst, _) in enumerate(spec.edges):
        ops = spec.edge_ops(e)
        a = np.zeros(len(ops))
        a[ops.index(kept.get((src, dst), "zero"))] = 10.0
        alphas.append(a)
    return alphas


def _cells(cfg, genotype: SegQcGenotype):
    specs = (dataclasses.replace(s, n_nodes=cfg.space.nodes) for s in (DOWN_SPEC, UP_SPEC, CONTRACTING_SPEC, NONSCALING_SPEC))
    return zip(specs, (genotype.seg.down, genotype.seg.up, genotype.qc.contracting, genotype.qc.nonscaling))


def test_the_sampler_is_deterministic_for_a_seed_and_draws_from_the_decoders_space() -> None:
    """Same seed, same genotypes; every draw is a genotype the search's decoder (argmax structure) can return."""
    cfg = preset("smoke")
    first = [random_genotype(cfg, rng) for rng in [np.random.default_rng(7)] for _ in range(30)]
    again = [random_genotype(cfg, rng) for rng in [np.random.default_rng(7)] for _ in range(30)]
    other = [random_genotype(cfg, rng) for rng in [np.random.default_rng(8)] for _ in range(30)]
    assert first == again and first != other
    assert len({g.to_json() for g in first}) > 20  # a spread, not one architecture
    for genotype in first:
        assert SegQcGenotype.from_json(genotype.to_json()) == genotype
        for spec, cell in _cells(cfg, genotype):
            assert decode_cell(spec, "op", _alphas_for(spec, cell)) == cell


def test_random_genotypes_build_and_run_as_a_seg_and_qc_pair() -> None:
    from search.methods.segqc_hw.search import build_derived
    from search.train.seg_outputs import probs_and_uncertainty

    cfg = preset("smoke")
    rng = np.random.default_rng(0)
    x = torch.rand(2, 3, 32, 32)
    for _ in range(2):
        seg, qc = build_derived(cfg, random_genotype(cfg, rng), seed=0)
        seg.eval(), qc.eval()
        with torch.no_grad():
            logits = seg(x)
            probs, uncertainty = probs_and_uncertainty(logits)
            dice = qc(x, probs, uncertainty)
        assert logits.shape == (2, cfg.task.num_classes, 32, 32) and dice.shape == (2,)
        assert torch.isfinite(logits).all() and torch.isfinite(dice).all()


class EdgeCount:
    """A fake latency model: a genotype's ms is its number of edges (so candidates tie often)."""

    def __init__(self):
        self.calls = 0

    def of_genotype(self, genotype: SegQcGenotype) -> float:
        self.calls += 1
        cells = (genotype.seg.down, genotype.seg.up, genotype.qc.contracting, genotype.qc.nonscaling)
        return float(sum(len(c.edges) for c in cells))


def test_matching_returns_the_closest_prediction_the_first_drawn_on_ties_deterministically() -> None:
    cfg = preset("smoke")
    pool = random_candidates(cfg, EdgeCount(), seed=3, n_candidates=60)
    assert len(pool) == 60 and len({ms for _, ms in pool}) > 2
    for target in (0.0, 14.2, 17.5, 100.0):
        genotype, ms = matched_random_genotype(cfg, EdgeCount(), target, seed=3, n_candidates=60)
        best = min(abs(m - target) for _, m in pool)
        assert abs(ms - target) == best
        first = next(i for i, (_, m) in enumerate(pool) if abs(m - target) == best)
        assert genotype == pool[first][0]
        assert (genotype, ms) == matched_random_genotype(cfg, EdgeCount(), target, seed=3, n_candidates=60)
    fake = EdgeCount()
    matched_random_genotype(cfg, fake, 10.0, seed=0, n_candidates=5)
    assert fake.calls == 5  # prediction only, one per candidate
    a, b = SegQcGenotype.from_json(pool[0][0].to_json()), pool[1][0]
    assert closest([(a, 9.0), (b, 11.0)], 10.0)[0] == a  # equal distance: the first drawn
    with pytest.raises(ValueError, match="n_candidates"):
        random_candidates(cfg, EdgeCount(), seed=0, n_candidates=0)


def test_a_target_below_every_draw_is_reached_by_cost_only_cell_swaps() -> None:
    """The hardware-aware searches land below the cheapest uniform draw: the refinement swaps random cells in
    while the prediction comes nearer, never moving away from the target, deterministically for a seed."""
    from search.methods.segqc_hw.random_control import MATCH_TOLERANCE, control_record, refine_to_target, swap_one_cell

    cfg = preset("smoke")
    fake = EdgeCount()
    pool = random_candidates(cfg, fake, seed=3, n_candidates=20)
    start = closest(pool, 0.0)  # fewest edges of the pool
    target = start[1] - 3.0  # below every draw
    refined = refine_to_target(start, cfg, fake, target, seed=3, steps=200)
    assert abs(refined[1] - target) < abs(start[1] - target)
    assert refined[1] == fake.of_genotype(refined[0])
    assert refined == refine_to_target(start, cfg, EdgeCount(), target, seed=3, steps=200)
    assert refine_to_target(start, cfg, EdgeCount(), start[1], seed=3, steps=200) == start  # on target: no swap
    rng = np.random.default_rng(0)
    swapped = swap_one_cell(start[0], cfg, rng)
    cells = lambda g: (g.seg.down, g.seg.up, g.qc.contracting, g.qc.nonscaling)  # noqa: E731
    assert sum(a != b for a, b in zip(cells(swapped), cells(start[0]))) <= 1  # one cell at most changed
    from search.methods.segqc_hw.random_control import change_one_op

    changed = change_one_op(start[0], cfg, rng)
    diff = [(a, b) for a, b in zip(cells(changed), cells(start[0])) if a != b]
    assert len(diff) <= 1 and all(len(a.edges) == len(b.edges) for a, b in diff)  # one edge's op at most
    for spec, cell in _cells(cfg, changed):
        assert decode_cell(spec, "op", _alphas_for(spec, cell)) == cell  # still a genotype of the space
    record = control_record("searched_hw", refined, target, 3, 20)
    assert record["matched"] == (abs(refined[1] - target) <= MATCH_TOLERANCE * target)
    assert control_record("searched_hw", (start[0], 10.0), 10.4, 3, 20)["matched"] is True
    assert control_record("searched_hw", (start[0], 10.0), 12.0, 3, 20)["matched"] is False


def test_matching_with_the_lookup_table_model_itself() -> None:
    """``FrameworkLatency.of_genotype`` (the searched rows' ``expected_latency_ms``) prices the candidates."""
    from search.methods.segqc_hw.latency_model import FrameworkLatency
    from search.methods.segqc_hw.search import qc_config, seg_config

    class Table:  # every op: its channels times its pixels, so bigger ops cost more
        def get(self, key):
            return key.c_in * key.c_out * float(np.prod(key.shape)) / max(key.stride, 1) ** 2 * 1e-6

    cfg = preset("smoke")
    latency = FrameworkLatency(Table(), 32, seg_config(cfg), qc_config(cfg))
    pool = random_candidates(cfg, latency, seed=1, n_candidates=8)
    assert len({round(ms, 9) for _, ms in pool}) > 1
    target = float(np.median([ms for _, ms in pool]))
    genotype, ms = matched_random_genotype(cfg, latency, target, seed=1, n_candidates=8)
    assert ms == latency.of_genotype(genotype) and abs(ms - target) == min(abs(m - target) for _, m in pool)


def test_control_stages_leave_every_existing_config_alone() -> None:
    """The controls are new stages: the searches, the searched and baseline retrainings keep their configs (a
    running experiment resumes without redoing them); a control depends on its target and the sampling seed."""
    from search.methods.segqc_hw.experiment import baseline_config, control_config, retrain_config, search_config
    from search.train.stages import config_hash

    default = preset("default")  # the hashes its stages were recorded with before the controls existed
    assert [config_hash(search_config(default, lam, 0)) for lam in (0.0, 0.001, 0.01)] == \
        ["33936025844d2499", "437c4fb19ca89086", "17a979d70e9c8579"]
    # the retrainings' own hashes moved once since, on purpose: with the collapse restarts (RetrainConfig.seg_restarts,
    # restart_floor; search.train.restarts) a retraining can end elsewhere, so a recorded row is retrained
    assert config_hash(retrain_config(default, search_config(default, 0.001, 0))) == "d006a1b5747dc892"
    assert config_hash(retrain_config(default, baseline_config(16))) == "f1d4ad8d2bd23af4"
    cfg = preset("smoke")
    base = control_config(cfg, "searched_hw", 12.5)
    assert base["sampling_seed"] == cfg.seed and base["n_candidates"] == 200
    assert control_config(cfg, "searched_hw", 12.75) != base
    assert control_config(dataclasses.replace(cfg, seed=1), "searched_hw", 12.5) != base


def _with_controls(results: dict) -> dict:
    """``results`` with a random control of each Table II search: one the search beats, one it does not."""
    from search.methods.segqc_hw.report import random_control_verdict

    rows = results["rows"]
    controls = {}
    for key, dice in (("searched_hw", 0.600), ("searched_nohw", 0.650)):
        mean = rows[key]["test"]["dice_mean"]  # 5 patients x 2 frames around the row's mean (results.json keeps none)
        rows[key]["test"]["frames"] = [{"patient": i, "true": mean + (i - 2) * 0.01 + (j - 0.5) * 0.002}
                                       for i in range(5) for j in range(2)]
        shift = dice - mean  # every frame moved alike: a difference every patient shows
        frames = [dict(f, true=f["true"] + shift) for f in rows[key]["test"]["frames"]]
        controls[f"random_{key}"] = {
            "test": dict(rows[key]["test"], dice_mean=dice, frames=frames),
            "cost": dict(rows[key]["cost"], latency_ms=19.0),
            "random_control_of": key, "genotype": {"seg": "random cells"}, "target_ms": 18.0,
            "expected_latency_ms": 18.25, "sampling_seed": 0, "n_candidates": 200}
        rows[key]["random_control"] = random_control_verdict(f"random_{key}", rows[key], controls[f"random_{key}"])
    return dict(results, controls=controls)


def test_the_report_renders_with_and_without_controls(tmp_path: Path) -> None:
    from search.methods.segqc_hw.report import write_report
    from search.report.segqc import load_section
    from tests.search.report.stored_runs import segqc_run

    path = segqc_run(tmp_path / "old")  # a results.json from before the controls
    older = json.loads(path.read_text())
    assert "controls" not in older
    readme = write_report(older, tmp_path / "again", {}).read_text()
    assert "## Table II" in readme and "random genotype" not in readme
    assert not any("random genotype" in b for b in load_section([path.parent], "smoke").blocks)

    results = _with_controls(older)
    hw = results["rows"]["searched_hw"]["random_control"]
    assert hw["beats"] and hw["margin"] == pytest.approx(0.622 - 0.600) and hw["predicted_ms"] == 18.25
    nohw = results["rows"]["searched_nohw"]["random_control"]
    assert not nohw["beats"] and nohw["margin"] == pytest.approx(0.633 - 0.650)
    folder = tmp_path / "new"
    readme = write_report(results, folder, {}).read_text()
    assert "## Searched vs a random genotype of the same predicted latency" in readme
    assert "| hardware-aware (lambda2 = 0.001) | 0.622 | 0.600 | 18.00 / 18.25 | 21.8 / 19.0 " \
           "| beats its random control (by 0.022 Dice; 95% CI over 5 patients [+0.022, +0.022]) |" in readme
    assert "does NOT beat its random control (0.017 Dice below it; 95% CI over 5 patients [-0.017, -0.017])" in readme
    assert "closest of 200 drawn with one seed" in readme
    assert "## Table II" in readme and "## Latency weight sensitivity" in readme  # the other sections stay
    stored = json.loads((folder / "results.json").read_text())
    assert stored["rows"]["searched_hw"]["random_control"]["beats"] is True
    assert set(stored["controls"]) == {"random_searched_hw", "random_searched_nohw"}
    assert "frames" not in stored["controls"]["random_searched_hw"]["test"]
    # Table II, its targets and the sensitivity table never show a control.
    assert "random genotype" not in readme.split("## Searched vs")[0]
    section = load_section([folder], "smoke")
    assert any("beats its random control" in b for b in section.blocks)
    assert not any("random" in p.label for p in section.points)


def test_a_margin_inside_the_patients_noise_beats_nothing() -> None:
    """The paired bootstrap over patients: a Dice gain some patients show and others reverse is no verdict."""
    from search.methods.segqc_hw.report import patient_difference, random_control_verdict, verdict_text

    def test(dice_by_patient):
        frames = [{"patient": i, "true": d} for i, d in enumerate(dice_by_patient)]
        return {"dice_mean": float(np.mean(dice_by_patient)), "frames": frames}

    searched = {"test": test([0.8, 0.5, 0.9, 0.4, 0.7, 0.6])}
    noisy = {"test": test([0.6, 0.7, 0.7, 0.6, 0.5, 0.8]), "cost": {"latency_ms": 10.0}}  # the same mean, mixed signs
    diff = patient_difference(searched["test"], noisy["test"])
    assert diff["patients"] == 6 and diff["mean"] == pytest.approx(0.0)
    assert diff["ci95"][0] < 0 < diff["ci95"][1]
    assert diff == patient_difference(searched["test"], noisy["test"])  # seeded
    v = random_control_verdict("random_searched_hw", searched, noisy)
    assert not v["beats"] and not v["clear"] and "shows no clear difference" in verdict_text(v)
    worse = {"test": test([d - 0.1 for d in [0.8, 0.5, 0.9, 0.4, 0.7, 0.6]]), "cost": {"latency_ms": 10.0}}
    v = random_control_verdict("random_searched_hw", searched, worse)
    assert v["beats"] and v["clear"] and v["difference"]["ci95"][0] == pytest.approx(0.1)
    # no frames (or one patient): no interval, the plain margin decides as before
    bare = {"test": {"dice_mean": 0.5}, "cost": {"latency_ms": 10.0}}
    v = random_control_verdict("random_searched_hw", {"test": {"dice_mean": 0.6}}, bare)
    assert v["difference"] is None and v["beats"] and v["clear"]
