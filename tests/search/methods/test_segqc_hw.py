"""segqc-hw: presets, the loss of eq. 3, the S1/S2 protocol of the joint search, resume, the stages, the smoke run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from search.methods.segqc_hw.config import PRESETS, preset
from search.methods.segqc_hw.framework import framework_loss, run_framework
from search.train.losses import dice_of_prediction
from tests.search.methods.synthetic_echo import synthetic_echo_cases, synthetic_protocol_parts


class TinySeg(nn.Module):
    """A 1-layer logits net with one architecture logit, enough to test the protocol."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.alpha = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        w = torch.softmax(self.alpha, 0)
        return self.bn(self.conv(x)) * w[0] + self.conv(x) * w[1]

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if n != "alpha"]


class TinyQc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.fc = nn.Linear(4, 1)
        self.alpha = nn.Parameter(torch.zeros(2))

    def forward(self, image, probs, unc):
        x = torch.relu(self.conv(torch.cat([image, probs, unc], 1))).mean((2, 3))
        return torch.sigmoid(self.fc(x) + self.alpha[0] - self.alpha[1])

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if n != "alpha"]


def test_presets_are_typed_values_and_seed_override_shifts_search_seeds() -> None:
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.preset == name
        assert cfg.search.lambda1 == 1.0 and cfg.search.lambda2 == pytest.approx(0.001)
        assert cfg.space.seg_init_filters == 4 and cfg.space.qc_init_filters == 8 and cfg.space.nodes == 3
        json.dumps(cfg.to_dict())
    paper = preset("paper")
    assert (paper.search.warmup_epochs, paper.search.alternate_epochs, len(paper.search.seeds)) == (40, 40, 5)
    assert (paper.data.n_s1, paper.data.n_s2, paper.data.n_test, paper.data.resolution) == (40, 40, 20, 256)
    shifted = preset("default", seed=3)
    assert shifted.seed == 3 and shifted.search.seeds == (3,)
    with pytest.raises(ValueError, match="unknown segqc-hw preset"):
        preset("huge")


def test_qc_target_is_true_dice_of_hard_segmentation_and_detached() -> None:
    logits = torch.zeros(2, 2, 4, 4, requires_grad=True)
    with torch.no_grad():
        logits[0, 1, :2] = 1.0  # predicts the top half
        logits[1, 1] = 1.0  # predicts everything
    masks = torch.zeros(2, 4, 4, dtype=torch.int64)
    masks[:, :2] = 1
    dice = dice_of_prediction(logits, masks)
    assert dice.tolist() == pytest.approx([1.0, 2 * 8 / (16 + 8)])
    assert not dice.requires_grad


def test_loss_is_ce_plus_lambda1_mse_plus_lambda2_latency() -> None:
    torch.manual_seed(0)
    seg, qc = TinySeg(), TinyQc()
    x = torch.rand(4, 3, 8, 8)
    y = (torch.rand(4, 8, 8) > 0.5).long()
    out = run_framework(seg, qc, x, y)
    lat = torch.tensor(40.0, requires_grad=True)
    terms = framework_loss(out, y, lambda1=1.0, lambda2=0.001, latency_ms=lat)
    ce = nn.functional.cross_entropy(out.logits, y)
    mse = nn.functional.mse_loss(out.predicted_dice, out.true_dice)
    assert float(terms.total.detach()) == pytest.approx(float((ce + mse).detach()) + 0.001 * 40.0, rel=1e-6)
    terms.total.backward()
    assert lat.grad is not None and float(lat.grad) == pytest.approx(0.001)
    # The QC error reaches the segmentation weights through its probabilities (joint loss) ...
    seg.zero_grad()
    out = run_framework(seg, qc, x, y)
    framework_loss(out, y, lambda1=1.0, lambda2=0.0, with_ce=False).total.backward()
    assert seg.conv.weight.grad is not None and seg.conv.weight.grad.abs().sum() > 0
    # ... but not when the segmentation net is frozen (S2 batches).
    seg.zero_grad()
    out = run_framework(seg, qc, x, y, seg_frozen=True)
    framework_loss(out, y, lambda1=1.0, lambda2=0.0, with_ce=False).total.backward()
    assert seg.conv.weight.grad is None or seg.conv.weight.grad.abs().sum() == 0


def test_a_latency_budget_charges_only_the_expected_latency_above_it() -> None:
    """``latency_budget_ms``: ``lambda2 * max(0, LAT - budget)``: no pull on the latency under the budget, the paper's
    pull above it; the logged latency is the whole expectation either way; the config keeps its old hash at 0."""
    from search.methods.segqc_hw.config import SearchConfig, preset
    from search.methods.segqc_hw.experiment import search_config

    torch.manual_seed(0)
    seg, qc = TinySeg(), TinyQc()
    x, y = torch.rand(4, 3, 8, 8), (torch.rand(4, 8, 8) > 0.5).long()
    out = run_framework(seg, qc, x, y)
    plain = float(framework_loss(out, y, lambda1=1.0, lambda2=0.0).total.detach())
    for lat_ms, budget, charged, grad in ((40.0, 30.0, 10.0, 0.001), (25.0, 30.0, 0.0, 0.0), (40.0, 0.0, 40.0, 0.001)):
        lat = torch.tensor(lat_ms, requires_grad=True)
        terms = framework_loss(out, y, lambda1=1.0, lambda2=0.001, latency_ms=lat, latency_budget_ms=budget)
        assert float(terms.total.detach()) == pytest.approx(plain + 0.001 * charged, rel=1e-6)
        assert terms.latency_ms == pytest.approx(lat_ms)
        terms.total.backward(retain_graph=True)
        assert float(lat.grad) == pytest.approx(grad)
    cfg = preset("smoke")
    assert "latency_budget_ms" not in cfg.to_dict()["search"]
    budgeted = replace(cfg, search=replace(cfg.search, latency_budget_ms=45.0))
    assert budgeted.to_dict()["search"]["latency_budget_ms"] == 45.0
    assert search_config(budgeted, 0.001, 0) != search_config(cfg, 0.001, 0)
    assert search_config(budgeted, 0.0, 0) == search_config(cfg, 0.0, 0)  # no latency term: the budget is unread
    with pytest.raises(ValueError, match="latency_budget_ms"):
        SearchConfig(latency_budget_ms=-1.0)


def _search_inputs(seed: int = 0):
    from search.methods.segqc_hw.config import AugmentConfig
    from search.methods.segqc_hw.data import frame_dataset

    s1 = frame_dataset(synthetic_echo_cases(3, 1), 16, AugmentConfig(), seed=seed + 1)
    s2 = frame_dataset(synthetic_echo_cases(3, 2), 16, AugmentConfig(), seed=seed + 2)
    return s1, s2


def _latency_of(seg: TinySeg, qc: TinyQc):
    """A differentiable stand-in for the LUT: op 1 of each net costs 10 ms, op 0 costs 1 ms."""
    def fn(tau, gen):
        cost = torch.tensor([1.0, 10.0])
        return (torch.softmax(seg.alpha, 0) * cost).sum() + (torch.softmax(qc.alpha, 0) * cost).sum()
    return fn


def test_joint_search_protocol_warmup_alternation_and_latency_term(tmp_path: Path) -> None:
    from search.methods.segqc_hw.joint_search import run_joint_search

    cfg = replace(preset("smoke").search, warmup_epochs=1, alternate_epochs=0, batch_size=2, arch_lr=0.05)
    torch.manual_seed(0)
    seg, qc = TinySeg(), TinyQc()
    s1, s2 = _search_inputs()
    run_joint_search(seg, qc, _latency_of(seg, qc), s1, s2, cfg, seed=0)
    assert torch.equal(seg.alpha, torch.zeros(2)) and torch.equal(qc.alpha, torch.zeros(2)), "warm-up moved alphas"
    # Alternating with a strong latency term pushes both nets towards the cheap op.
    cfg = replace(cfg, warmup_epochs=0, alternate_epochs=3, lambda2=10.0)
    state = run_joint_search(seg, qc, _latency_of(seg, qc), s1, s2, cfg, seed=0)
    assert seg.alpha[0] > seg.alpha[1] and qc.alpha[0] > qc.alpha[1]
    assert [h["phase"] for h in state.history] == ["alternate"] * 3
    assert state.history[-1]["expected_latency_ms"] < 11.0 * 2 / 2  # below the uniform mixture (5.5 + 5.5)


def test_s2_steps_never_train_the_segmentation_weights() -> None:
    """The S2 weight step (seg frozen, eval mode) changes neither seg weights nor its BN statistics."""
    from search.methods.segqc_hw.framework import framework_loss, run_framework

    torch.manual_seed(0)
    seg, qc = TinySeg(), TinyQc()
    s1, s2 = _search_inputs()
    x, y = next(iter(torch.utils.data.DataLoader(s2, batch_size=3)))
    before = {k: v.clone() for k, v in seg.state_dict().items()}
    opt_qc = torch.optim.Adam(qc.weight_parameters(), lr=0.1)
    seg.eval()
    for _ in range(3):
        out = run_framework(seg, qc, x, y, seg_frozen=True)
        loss = framework_loss(out, y, lambda1=1.0, lambda2=0.0, with_ce=False).total
        opt_qc.zero_grad()
        loss.backward()
        opt_qc.step()
    after = seg.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "S2 QC steps changed the frozen seg net"


def test_search_resumes_to_the_same_result(tmp_path: Path) -> None:
    from search.methods.segqc_hw.joint_search import run_joint_search

    cfg = replace(preset("smoke").search, warmup_epochs=1, alternate_epochs=1, batch_size=2, arch_lr=0.05)

    def fresh():
        torch.manual_seed(0)
        return TinySeg(), TinyQc()

    seg_a, qc_a = fresh()
    s1, s2 = _search_inputs()
    run_joint_search(seg_a, qc_a, _latency_of(seg_a, qc_a), s1, s2, cfg, seed=3, checkpoint=tmp_path / "a.pt")
    # Interrupted after the warm-up epoch, then resumed from the checkpoint by a new process-like start.
    seg_b, qc_b = fresh()
    s1, s2 = _search_inputs()
    run_joint_search(seg_b, qc_b, _latency_of(seg_b, qc_b), s1, s2, replace(cfg, alternate_epochs=0), seed=3,
                     checkpoint=tmp_path / "b.pt")
    seg_c, qc_c = fresh()
    s1, s2 = _search_inputs()
    state = run_joint_search(seg_c, qc_c, _latency_of(seg_c, qc_c), s1, s2, cfg, seed=3, checkpoint=tmp_path / "b.pt")
    assert len(state.history) == 2
    for a, c in ((seg_a, seg_c), (qc_a, qc_c)):
        for (name, pa), (_, pc) in zip(a.state_dict().items(), c.state_dict().items()):
            assert torch.allclose(pa.float(), pc.float(), atol=1e-6), name


def test_each_stage_depends_on_its_part_of_the_config_and_its_upstream() -> None:
    """Another retraining schedule or one more sensitivity search leaves the searches' configs alone; a
    changed search reaches the retraining of its pair; the data stage ignores training values."""
    from search.methods.segqc_hw.experiment import RunPaths, SegQcExperiment, retrain_config, search_config

    cfg = preset("smoke")
    longer = replace(cfg, retrain=replace(cfg.retrain, seg_epochs=5))
    more = replace(cfg, search=replace(cfg.search, sensitivity_lambda2=(0.01, 0.1)))
    assert search_config(longer, 0.001, 0) == search_config(cfg, 0.001, 0) == search_config(more, 0.001, 0)
    assert search_config(cfg, 0.001, 0) != search_config(cfg, 0.01, 0)
    assert search_config(cfg, 0.001, 0) != search_config(cfg, 0.001, 1)
    arch = search_config(cfg, 0.0, 0)
    assert retrain_config(longer, arch) != retrain_config(cfg, arch)
    warmer = replace(cfg, search=replace(cfg.search, warmup_epochs=3))
    assert retrain_config(warmer, search_config(warmer, 0.0, 0)) != retrain_config(cfg, arch)

    def data_config(c):
        return SegQcExperiment(c, RunPaths(Path("run"), None, None)).data_stage().config

    assert data_config(longer) == data_config(warmer) == data_config(cfg)
    assert data_config(replace(cfg, data=replace(cfg.data, n_test=3))) != data_config(cfg)


SEARCHES_OF_SMOKE = ("searched_nohw", "searched_hw", "searched_hw_lambda0.01")
STAGES_OF_SMOKE = {"data", "latency-table", "search:nohw/seed0", "search:hw/seed0", "search:hw_lambda0.01/seed0",
                   "retrain:searched_nohw_seed0", "retrain:searched_hw_seed0", "retrain:searched_hw_lambda0.01_seed0",
                   *(f"random:{k}" for k in SEARCHES_OF_SMOKE), *(f"retrain:random_{k}" for k in SEARCHES_OF_SMOKE),
                   "retrain:unet8", "retrain:unet16", "table-ii", "export", "report"}


def _stage_record(out: Path) -> dict:
    return json.loads((out / "stages.json").read_text())["stages"]


@pytest.mark.slow
def test_smoke_preset_end_to_end_then_resume(tmp_path: Path, monkeypatch) -> None:
    """Phantoms -> LUT -> two searches -> four retrained rows -> Table II -> report -> exported pair; a
    second run skips every finished stage (``stages.json`` says so), and another retraining schedule
    reruns the retraining and what reads it, not the searches."""
    from app.cards import load_card
    from search.core.genotypes import SegQcGenotype
    from search.methods.segqc_hw.experiment import RunPaths, run_segqc_hw

    monkeypatch.setenv("CARDIAC_RT_CACHE", str(tmp_path / "phantoms"))
    cfg = preset("smoke")
    paths = RunPaths(out=tmp_path / "run", models=tmp_path / "models", docs=tmp_path / "docs")
    summary = run_segqc_hw(cfg, paths)
    results = json.loads((tmp_path / "docs" / "results.json").read_text())
    assert set(results["rows"]) == {"unet8", "unet16", "searched_nohw", "searched_hw"}
    for key, row in results["rows"].items():
        assert row["cost"]["latency_ms"] > 0 and row["cost"]["macs"] > 0, key
        assert 0.0 <= row["test"]["dice_mean"] <= 1.0 and row["test"]["n"] == cfg.data.n_test * cfg.data.frames_per_case
    assert results["rows"]["unet16"]["cost"]["macs"] > results["rows"]["unet8"]["cost"]["macs"]
    for key in ("searched_nohw", "searched_hw"):
        g = SegQcGenotype.from_dict(results["rows"][key]["genotype"])
        assert SegQcGenotype.from_json(g.to_json()) == g
        assert results["rows"][key]["search"]["lambda2"] == (0.0 if key == "searched_nohw" else cfg.search.lambda2)
        assert isinstance(results["rows"][key]["search"]["convergence"]["converged"], bool)  # issue 16
    assert [t["target"] for t in results["targets"]][0].startswith("framework latency")
    # The sensitivity search (lambda2 = 0.01) is measured beside the rows but is not a Table II row.
    (key, sens), = results["sensitivity"].items()
    assert key == "searched_hw_lambda0.01" and sens["search"]["lambda2"] == 0.01 == sens["lambda2"]
    assert sens["cost"]["latency_ms"] > 0 and "frames" not in sens["test"]
    report = (tmp_path / "docs" / "README.md").read_text()
    assert "Table II" in report and "0.839" in report  # the paper's U-net(16) Dice beside ours
    assert "lambda2 = 0.01, sensitivity" in report
    for png in ("qc_scatter.png", "cells_searched_hw.png", "cells_searched_nohw.png", "cells_searched_hw_lambda0.01.png"):
        assert (tmp_path / "docs" / png).stat().st_size > 1000
    seg = load_card(tmp_path / "models" / "echo-segqc-hw-seg-smoke.json").verify()
    qc = load_card(tmp_path / "models" / "echo-segqc-hw-qc-smoke.json").verify()
    assert results["export"]["seg"]["sha256"] == seg.raw["onnx_sha256"]
    assert results["export"]["int8"]["shipped"] == (tmp_path / "models" / "echo-segqc-hw-seg-smoke-int8.json").is_file()
    assert "## Shipped pair" in report and "echo-segqc-hw-qc-smoke" in report
    assert seg.pairs_with == qc.id and seg.method == qc.method == "segqc-hw"
    assert [i["name"] for i in qc.raw["inputs"]] == ["image", "probs", "uncertainty"]
    assert seg.raw["genotype"]["kind"] == "nasunet" and "qc_mae" in qc.metrics
    assert seg.raw["search"]["convergence"] == qc.raw["search"]["convergence"] and "## Did the searches converge?" in report
    # Every search's random control: retrained and timed beside it, neither a row nor a sensitivity search.
    assert set(results["controls"]) == {f"random_{k}" for k in SEARCHES_OF_SMOKE}
    control = results["controls"]["random_searched_hw"]
    assert control["random_control_of"] == "searched_hw" and 0.0 <= control["test"]["dice_mean"] <= 1.0
    assert control["cost"]["latency_ms"] > 0 and "frames" not in control["test"]
    assert control["target_ms"] == results["rows"]["searched_hw"]["expected_latency_ms"]
    verdict = results["rows"]["searched_hw"]["random_control"]
    assert verdict["control"] == "random_searched_hw" and isinstance(verdict["beats"], bool)
    assert verdict["margin"] == pytest.approx(results["rows"]["searched_hw"]["test"]["dice_mean"] - verdict["dice"])
    assert "random_control" in results["sensitivity"]["searched_hw_lambda0.01"]
    assert "## Searched vs a random genotype of the same predicted latency" in report
    recorded = json.loads((tmp_path / "run" / "search" / "random" / "searched_hw.json").read_text())
    assert SegQcGenotype.from_dict(recorded["genotype"]) == SegQcGenotype.from_dict(control["genotype"])
    first = _stage_record(tmp_path / "run")
    assert set(first) == STAGES_OF_SMOKE
    assert {name: r["status"] for name, r in first.items()} == dict.fromkeys(STAGES_OF_SMOKE, "ran")
    # Resume: every stage is skipped and read back, nothing is trained again.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*.pt")}
    assert stamps
    assert run_segqc_hw(cfg, paths).splitlines()[1:5] == summary.splitlines()[1:5]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    second = _stage_record(tmp_path / "run")
    for name in STAGES_OF_SMOKE:
        assert second[name]["status"] == "skipped", (name, second[name]["reason"])
        assert second[name]["reason"].endswith("config hash unchanged"), second[name]["reason"]
    assert second["search:hw/seed0"]["reason"] == \
        "skipped: result exists at search/hw/seed0/genotype.json, config hash unchanged"
    # Without the random controls (the chain's default): nothing retrained, no control in the results or
    # the report, the same searched pair.
    docs_before = json.loads((tmp_path / "docs" / "results.json").read_text())
    run_segqc_hw(cfg, paths, random_controls=False)
    lean = json.loads((tmp_path / "docs" / "results.json").read_text())
    assert not lean["controls"] and "random_control" not in lean["rows"]["searched_hw"]
    assert "## Searched vs a random genotype" not in (tmp_path / "docs" / "README.md").read_text()
    assert lean["rows"]["searched_hw"]["genotype"] == docs_before["rows"]["searched_hw"]["genotype"]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing trained again
    # Another retraining schedule: the rows are retrained from scratch, then measured again only if
    # their architectures changed (they did not), exported and reported again.
    longer = replace(cfg, retrain=replace(cfg.retrain, seg_epochs=2))
    run_segqc_hw(longer, paths)
    third = _stage_record(tmp_path / "run")
    reran = {name for name, r in third.items() if r["status"] == "ran"}
    # (table-ii too: the run before timed the rows without their controls)
    assert reran == {n for n in STAGES_OF_SMOKE if n.startswith("retrain:")} | {"table-ii", "export", "report"}
    assert third["retrain:unet8"]["reason"].startswith("reran: result at rows/unet8/scores.json was made with "
                                                       "config hash")
    assert len(json.loads((tmp_path / "run" / "rows" / "unet8" / "scores.json").read_text())["losses"]["seg"]) == 2


def test_stop_after_data_caches_the_patients_and_runs_nothing_else(tmp_path: Path, monkeypatch) -> None:
    """``--stop-after data``: config.json and the data/ cache (what ``bench/size_table.py`` reads), one stage in
    stages.json, no lookup table, search, row, report or export; run again, the cache is read back."""
    import argparse

    from search.methods.segqc_hw import cli
    from search.methods.segqc_hw.data import SPLITS, read_cached
    from search.methods.segqc_hw.experiment import RunPaths, run_segqc_hw

    parts = synthetic_protocol_parts()
    monkeypatch.setattr("search.methods.segqc_hw.data.protocol_for", lambda cfg: lambda _: parts)  # no phantoms
    cfg = preset("smoke")
    out = tmp_path / "run"
    paths = RunPaths(out=out, models=tmp_path / "models", docs=tmp_path / "docs")
    summary = run_segqc_hw(cfg, paths, stop_after="data")
    assert str(out / "data") in summary
    assert json.loads((out / "config.json").read_text()) == json.loads(json.dumps(cfg.to_dict()))
    assert {p.name for p in (out / "data").iterdir()} == {"cases_key.json", *(f"cases_{s}.npz" for s in SPLITS)}
    assert {s: len(c) for s, c in read_cached(out / "data").items()} == {s: len(parts[s]) for s in SPLITS}
    assert {name: r["status"] for name, r in _stage_record(out).items()} == {"data": "ran"}
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "data", "stages.json"]  # no latency/ or search/
    assert not (tmp_path / "models").exists() and not (tmp_path / "docs").exists()
    run_segqc_hw(cfg, paths, stop_after="data")
    assert _stage_record(out)["data"]["status"] == "skipped" and set(_stage_record(out)) == {"data"}

    seen = {}
    monkeypatch.setattr("search.methods.segqc_hw.experiment.run_segqc_hw",
                        lambda cfg, paths, device, stop_after, only_searches=None, random_controls=True:
                        seen.update(stop_after=stop_after, random_controls=random_controls))
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    cli.run(parser.parse_args(["--preset", "smoke", "--stop-after", "data", "--out", str(out), "--no-ship"]))
    assert seen == {"stop_after": "data", "random_controls": True}
    cli.run(parser.parse_args(["--preset", "smoke", "--stop-after", "data", "--out", str(out), "--no-random-controls"]))
    assert seen == {"stop_after": "data", "random_controls": False}


def test_targets_say_by_how_much_each_is_met_or_missed() -> None:
    from search.methods.segqc_hw.report import table_markdown, targets

    def row(dice, mae, r, ms, best):
        return {"test": {"dice_mean": dice, "qc_mae": mae, "qc_pearson": r},
                "cost": {"latency_ms": ms, "latency_min_ms": best, "macs": 1e8, "flops": 2e8, "params": 1e4}}

    results = {"rows": {"unet8": row(0.80, 0.05, 0.7, 40.0, 30.0), "unet16": row(0.84, 0.05, 0.7, 70.0, 50.0),
                        "searched_nohw": row(0.83, 0.04, 0.9, 25.0, 20.0),
                        "searched_hw": row(0.835, 0.06, 0.85, 20.0, 14.0)}}
    by_name = {t["target"]: t for t in targets(results)}
    median = by_name["framework latency <= 0.3x U-net(16)+ResNet18 (median)"]
    assert median["value"] == pytest.approx(20 / 70) and median["met"]
    best = by_name["framework latency <= 0.3x U-net(16)+ResNet18 (best of N)"]
    assert best["value"] == pytest.approx(14 / 50) and best["met"]
    dice = by_name["Dice within 0.01 of U-net(16)+ResNet18"]
    assert dice["met"] and dice["by"] == pytest.approx(0.005)
    mae = by_name["QC MAE <= 0.05 (hardware-aware)"]
    assert not mae["met"] and mae["by"] == pytest.approx(-0.01)
    lat = by_name["latency term lowers measured latency (hw < w/o hw), ms saved"]
    assert lat["met"] and lat["value"] == pytest.approx(5.0)
    comparable = by_name["... at comparable Dice (hw at most 0.01 below w/o hw)"]
    assert comparable["met"] and comparable["value"] == pytest.approx(-0.005)
    results["rows"]["searched_hw"]["test"]["dice_mean"] = 0.80
    worse = {t["target"]: t for t in targets(results)}["... at comparable Dice (hw at most 0.01 below w/o hw)"]
    assert not worse["met"] and worse["by"] == pytest.approx(-0.02)
    assert "| 0.839 | 0.049 | 82 | 1.00 | 3635 |" in table_markdown(results)
    assert "| 0.832 | 0.049 | 49 | 0.60 | 373 |" in table_markdown(results)


def test_shipped_pair_is_the_hardware_aware_search_best_on_validation() -> None:
    from search.methods.segqc_hw.experiment import shipped_key

    def row(val_dice, val_mae, test_dice):
        return {"val": {"dice_mean": val_dice, "qc_mae": val_mae}, "test": {"dice_mean": test_dice}}

    rows = {"searched_hw": row(0.60, 0.10, 0.70), "searched_nohw": row(0.90, 0.01, 0.90)}
    assert shipped_key(rows, {}) == "searched_hw"  # w/o hardware-aware never ships
    better_on_val = {"searched_hw_lambda0.01": row(0.62, 0.10, 0.50)}
    assert shipped_key(rows, better_on_val) == "searched_hw_lambda0.01"  # test Dice plays no part
    assert shipped_key(rows, {"searched_hw_lambda0.01": row(0.60, 0.10, 0.99)}) == "searched_hw"  # ties: Table II row


# ---------------------------------------------------------------------------- B-mode task (issue 18)
def test_bmode_task_has_four_classes_its_own_ids_and_folders_and_leaves_contrast_hashes_alone() -> None:
    from search.methods.segqc_hw.experiment import RunPaths, SegQcExperiment, search_config
    from search.methods.segqc_hw.search import qc_config, seg_config
    from search.methods.segqc_hw.tasks import echo_task

    contrast, bmode = preset("smoke"), preset("smoke", task="bmode")
    assert "task" not in contrast.to_dict()["data"]  # contrast configs (their hashes, run records) as before
    assert bmode.to_dict()["data"]["task"] == "bmode" and bmode.data.resolution == contrast.data.resolution
    assert seg_config(bmode).num_classes == qc_config(bmode).num_classes == 4
    assert qc_config(bmode).in_channels == 3 + 4 + 1 and seg_config(contrast).num_classes == 2
    assert dict(bmode.task.classes) == {0: "background", 1: "LV", 2: "MYO", 3: "LA"}
    assert search_config(bmode, 0.001, 0) != search_config(contrast, 0.001, 0)

    def data_config(c):
        return SegQcExperiment(c, RunPaths(Path("run"), None, None)).data_stage().config

    assert data_config(bmode) != data_config(contrast)
    b, c = echo_task("bmode"), echo_task("contrast")
    assert b.model_ids("default") == ("echo-bmode-segqc-hw-seg", "echo-bmode-segqc-hw-qc")
    assert c.model_ids("default") == ("echo-segqc-hw-seg", "echo-segqc-hw-qc")
    assert (b.run_method, b.docs_name) != (c.run_method, c.docs_name)
    with pytest.raises(ValueError, match="contrast, bmode"):
        preset("smoke", task="cine")


def test_bmode_default_run_folders_never_touch_the_contrast_run(tmp_path: Path) -> None:
    import argparse

    from search.methods.common_cli import run_places
    from search.methods.segqc_hw import cli
    from search.methods.segqc_hw.tasks import echo_task

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    places = {}
    for task in ("contrast", "bmode"):
        args = parser.parse_args(["--preset", "default", "--task", task])
        t = echo_task(args.task)
        places[task] = run_places(args, method=t.run_method, docs_name=t.docs_name, root=tmp_path)
    assert places["contrast"].out == tmp_path / "runs" / "segqc-hw" / "default"
    assert places["bmode"].out == tmp_path / "runs" / "segqc-hw-bmode" / "default"
    assert places["bmode"].docs_dir == tmp_path / "docs" / "segqc-bmode" != places["contrast"].docs_dir
    assert places["bmode"].models_dir == places["contrast"].models_dir == tmp_path / "models"  # other ids


def test_bmode_qc_target_is_the_mean_dice_over_lv_myo_and_la() -> None:
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :2], labels[0, 2:4], labels[0, 4:6] = 1, 2, 3
    pred = labels.clone()
    pred[0, 0] = 2  # LV: 8 of 16 right; MYO: 16 right + 8 wrong; LA exact
    logits = torch.nn.functional.one_hot(pred, 4).movedim(-1, 1).float()
    lv, myo, la = 2 * 8 / (8 + 16), 2 * 16 / (24 + 16), 1.0
    assert float(dice_of_prediction(logits, labels)[0]) == pytest.approx((lv + myo + la) / 3)


def test_echo_mode_is_written_for_echo_cards_only() -> None:
    from search.export.card_writer import CardContent, TensorSpec

    def content(modality, mode):
        return CardContent("m", modality, "seg", "segqc-hw", [TensorSpec("image", (1, 3, 32, 32))], [],
                           {0: "background", 1: "myocardium"}, {"kind": "scale", "scale": 255.0}, "NCHW", {},
                           echo_mode=mode)

    assert content("echo", "bmode").echo_mode == "bmode" and content("cine", None).echo_mode is None
    with pytest.raises(ValueError, match="echo cards"):
        content("cine", "contrast")
    with pytest.raises(ValueError, match="echo_mode must be one of"):
        content("echo", "doppler")


def _segqc_cli(argv: list[str]) -> int:
    import argparse

    from search.methods.segqc_hw import cli

    parser = argparse.ArgumentParser(prog="segqc-hw")
    cli.configure(parser)
    return cli.run(parser.parse_args(argv))


@pytest.mark.slow
def test_bmode_smoke_end_to_end_ships_a_four_class_pair(tmp_path: Path, monkeypatch) -> None:
    """``--task bmode --preset smoke``: B-mode phantoms -> searches -> retraining -> Table II -> a 4-class
    seg + QC pair in the models folder, cards marked ``echo_mode: bmode``, beside no contrast file."""
    import onnxruntime as ort

    from app.cards import load_card
    from search.train.datasets import ECHO_NORMALISATION

    monkeypatch.setenv("CARDIAC_RT_CACHE", str(tmp_path / "phantoms"))
    models = tmp_path / "models"
    assert _segqc_cli(["--preset", "smoke", "--task", "bmode", "--out", str(tmp_path / "run"),
                       "--models-dir", str(models), "--docs-dir", str(tmp_path / "docs")]) == 0
    shipped = {p.stem for p in models.glob("*.json")}
    assert {"echo-bmode-segqc-hw-seg-smoke", "echo-bmode-segqc-hw-qc-smoke"} <= shipped
    assert all(s.startswith("echo-bmode-segqc-hw-") for s in shipped)  # nothing of the contrast task
    seg = load_card(models / "echo-bmode-segqc-hw-seg-smoke.json").verify()
    qc = load_card(models / "echo-bmode-segqc-hw-qc-smoke.json").verify()
    classes = {"0": "background", "1": "LV", "2": "MYO", "3": "LA"}
    for card in (seg, qc):
        assert card.raw["echo_mode"] == "bmode" and card.modality == "echo" and card.method == "segqc-hw"
        assert card.raw["classes"] == classes and card.raw["preprocessing"]["label_map"] == classes
        assert card.raw["data"]["source"] == "phantom-echo (app.data.phantom.echo, bmode)"
    assert seg.pairs_with == qc.id
    assert seg.raw["architecture"]["args"]["num_classes"] == qc.raw["architecture"]["args"]["num_classes"] == 4
    assert set(seg.metrics["dice"]["per_class"]) == {"LV", "MYO", "LA"} and "qc_mae" in qc.metrics
    r = preset("smoke").data.resolution
    assert [o["shape"] for o in seg.raw["outputs"]] == [[1, 4, r, r], [1, 1, r, r]]
    assert [i["shape"] for i in qc.raw["inputs"]] == [[1, 3, r, r], [1, 4, r, r], [1, 1, r, r]]
    image = np.random.default_rng(0).random((1, 3, r, r), dtype=np.float32) * 255 / ECHO_NORMALISATION["scale"]
    seg_s = ort.InferenceSession(str(seg.onnx_path), providers=["CPUExecutionProvider"])
    probs, unc = seg_s.run(None, {"image": image})
    assert probs.shape == (1, 4, r, r) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert unc.shape == (1, 1, r, r) and 0.0 <= unc.min() and unc.max() <= 1.0
    qc_s = ort.InferenceSession(str(qc.onnx_path), providers=["CPUExecutionProvider"])
    (dice,) = qc_s.run(None, {"image": image, "probs": probs, "uncertainty": unc})
    assert 0.0 <= float(np.ravel(dice)[0]) <= 1.0
    results = json.loads((tmp_path / "docs" / "results.json").read_text())
    assert results["config"]["data"]["task"] == "bmode"
    assert results["export"]["seg"]["id"] == seg.id and results["export"]["seg"]["sha256"] == seg.raw["onnx_sha256"]
    report = (tmp_path / "docs" / "README.md").read_text()
    assert report.startswith("# segqc-hw: joint segmentation + QC search for B-mode apical four-chamber echo")
    for row in results["rows"].values():  # the QC target: per-frame mean Dice over LV, MYO and LA, in [0, 1]
        assert 0.0 <= row["test"]["dice_mean"] <= 1.0


def test_bmode_on_echonet_stops_with_one_clear_error(tmp_path: Path, capsys) -> None:
    """EchoNet-Dynamic traces the LV only: the B-mode task (LV, MYO, LA) refuses it before any work."""
    from dataclasses import replace as dc_replace

    from app.data.case import DataError
    from app.data.phantom_cli import write_phantom_dataset
    from search.data import parse_data_spec
    from search.methods.segqc_hw.data import load_protocol

    root = tmp_path / "EchoNet"
    write_phantom_dataset("echo", 4, root, seed=4, n_frames=4, size=48, fmt="echonet")
    with pytest.raises(SystemExit) as stop:
        _segqc_cli(["--preset", "smoke", "--task", "bmode", "--data", f"echonet:{root}", "--out", str(tmp_path / "run")])
    message = str(stop.value)
    assert message.startswith("segqc-hw --task bmode: --data echonet: ") and "\n" not in message
    assert str(root) in message and "LV" in message and "MYO/LA" in message
    assert not (tmp_path / "run").exists()  # stopped before the run folder was made
    cfg = dc_replace(preset("smoke", task="bmode").data, source=parse_data_spec(f"echonet:{root}").text)
    with pytest.raises(DataError, match="MYO/LA"):
        load_protocol(cfg, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("cases_*.npz"))


def test_contrast_task_on_a_bmode_dataset_says_add_task_bmode(tmp_path: Path) -> None:
    """CAMUS and EchoNet are B-mode: ``segqc-hw --data camus:DIR`` (contrast, the default) stops with one line
    naming ``--task bmode`` before any work; ``python -m search --data camus:DIR`` skips the contrast stage
    with the reason and runs the B-mode one. DICOM and NIfTI folders may hold contrast echo: allowed."""
    from app.data.phantom_cli import write_phantom_dataset
    from search.chain.all_cli import data_skip
    from search.data import parse_data_spec
    from search.methods.segqc_hw.tasks import data_refusal

    root = tmp_path / "CAMUS"
    write_phantom_dataset("echo", 3, root, seed=4, n_frames=4, size=48, fmt="camus")
    with pytest.raises(SystemExit) as stop:
        _segqc_cli(["--preset", "smoke", "--data", f"camus:{root}", "--out", str(tmp_path / "run")])
    message = str(stop.value)
    assert message.startswith("segqc-hw: --data camus: CAMUS is B-mode echo") and "\n" not in message
    assert "add --task bmode" in message and not (tmp_path / "run").exists()
    spec = parse_data_spec(f"camus:{root}")
    skip = data_skip("segqc-hw", spec)
    assert skip and skip.startswith("skipped (CAMUS is B-mode echo") and "segqc-hw-bmode does" in skip
    assert data_skip("segqc-hw-bmode", spec) is None
    echonet = data_refusal("contrast", "echonet")
    assert echonet and "EchoNet-Dynamic is B-mode echo" in echonet and "--task bmode needs LV, MYO and LA" in echonet
    assert data_refusal("contrast", "dicom") is None and data_refusal("contrast", "nifti") is None
    assert data_refusal("bmode", "camus") is None and data_refusal("contrast", "phantom") is None


def test_shipped_echo_cards_say_their_echo_mode() -> None:
    """Every echo card in ``models/`` names the kind of echo it is for; cine cards have no such field."""
    from app.cards import default_models_dir, discover
    from search.export.card_writer import ECHO_MODES

    cards = list(discover(default_models_dir()))
    assert any(c.modality == "echo" for c in cards)
    for card in cards:
        if card.modality == "echo":
            assert card.raw.get("echo_mode") in ECHO_MODES, card.id
        else:
            assert "echo_mode" not in card.raw, card.id
    by_id = {c.id: c for c in cards}
    if "echo-segqc-hw-seg" in by_id:
        assert by_id["echo-segqc-hw-seg"].raw["echo_mode"] == "contrast"


def test_qc_only_retraining_refuses_a_missing_qc_net(tmp_path: Path) -> None:
    """``train_and_score`` with ``seg_losses`` (a seg net trained already) trains only a QC net: none is an error
    that names the row, before anything is written."""
    from search.methods.segqc_hw.config import AugmentConfig, RetrainConfig
    from search.methods.segqc_hw.retrain import PairData, train_and_score

    with pytest.raises(ValueError, match="row A: a trained seg net .* but no QC net"):
        train_and_score("row A", TinySeg(), None, PairData([], [], [], []), RetrainConfig(), AugmentConfig(), 32,
                        seed=0, row_dir=tmp_path / "row", seg_losses=[1.0])
    assert not (tmp_path / "row").exists()


def test_distillation_loss_is_zero_for_the_teachers_own_logits_and_pulls_only_the_student() -> None:
    from search.train.datasets import IGNORE_INDEX
    from search.train.losses import distillation_loss

    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 3, 8, 8, generator=gen, requires_grad=True)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    assert float(distillation_loss(teacher.detach().clone(), teacher, labels)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 3, 8, 8, generator=gen, requires_grad=True)
    loss = distillation_loss(student, teacher, labels, temperature=2.0)
    loss.backward()
    assert float(loss.detach()) > 0 and student.grad is not None and teacher.grad is None
    # T^2 KL per pixel, by hand, and ignored pixels left out of the mean
    p_t = torch.softmax(teacher.detach() / 2, 1)
    by_hand = 4 * (p_t * (p_t.log() - torch.log_softmax(student.detach() / 2, 1))).sum(1)
    assert float(loss.detach()) == pytest.approx(float(by_hand.mean()), rel=1e-5)
    labels[0] = IGNORE_INDEX
    assert float(distillation_loss(student, teacher, labels, 2.0).detach()) == pytest.approx(float(by_hand[1].mean()),
                                                                             rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(student, teacher, labels, 0.0)
    with pytest.raises(ValueError, match="differ"):
        distillation_loss(student, teacher[:, :2], labels)


def test_a_distilled_seg_net_learns_from_a_frozen_teacher(tmp_path: Path) -> None:
    """``train_seg`` with a ``Distillation``: the teacher's weights and BatchNorm statistics are untouched, the
    student ends elsewhere than without it (same seed, data and schedule); a QC-only retraining refuses it."""
    from search.baselines.unet import UNet, UNetConfig
    from search.methods.segqc_hw.config import AugmentConfig, RetrainConfig
    from search.methods.segqc_hw.retrain import Distillation, PairData, train_and_score, train_seg
    from tests.search.methods.synthetic_echo import synthetic_echo_cases

    cases = synthetic_echo_cases(2, 1)
    cfg = RetrainConfig(seg_epochs=1, batch_size=2, seg_restarts=0)  # one epoch: a collapse, not what is tested
    torch.manual_seed(1)
    teacher = UNet(UNetConfig(initial_filters=4, depth=3)).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    students = []
    for i, distill in enumerate((None, Distillation(teacher, weight=5.0))):
        torch.manual_seed(2)
        seg = UNet(UNetConfig(initial_filters=4, depth=3))
        train_seg(seg, cases, cfg, AugmentConfig(), 32, seed=0, checkpoint=tmp_path / f"s{i}.pt", distill=distill)
        students.append(seg.state_dict())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert not teacher.training and all(p.requires_grad for p in teacher.parameters())  # handed back as it came
    assert not all(torch.equal(students[0][k], students[1][k]) for k in students[0])
    with pytest.raises(ValueError, match="nothing left to distil"):
        train_and_score("row B", TinySeg(), TinySeg(), PairData([], [], [], []), cfg, AugmentConfig(), 32, seed=0,
                        row_dir=tmp_path / "row", seg_losses=[1.0], distill=Distillation(teacher))
    with pytest.raises(ValueError, match="must be > 0"):
        Distillation(teacher, weight=0.0)
