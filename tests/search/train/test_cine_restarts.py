"""Collapse restarts for the cine rows (msnas-hw, rtdnas): configs, old run folders, a forced collapse."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from search.methods.msnas_hw.config import preset as msnas_preset
from search.methods.rtdnas import space
from search.methods.rtdnas.config import preset as rtdnas_preset
from search.train.cine_config import RESTART_KEYS, RetrainConfig, predates_restarts, stage_config
from search.train.restart_report import rows_restarts_markdown
from search.train.stages import config_hash


def _without_restarts(doc: dict) -> dict:
    return {**doc, "retrain": {k: v for k, v in doc["retrain"].items() if k not in RESTART_KEYS}}


@pytest.mark.parametrize("make", [msnas_preset, rtdnas_preset])
def test_presets_restart_collapses_except_smoke(make):
    assert make("smoke").retrain.seg_restarts == 0
    for name in ("default", "paper"):
        assert make(name).retrain.seg_restarts == 2 and make(name).retrain.restart_floor == 0.3
    assert not set(RESTART_KEYS) & set(make("smoke").to_dict()["retrain"])  # off: the dict (and hash) as before
    assert set(RESTART_KEYS) <= set(make("default").to_dict()["retrain"])


def test_retrain_config_checks_its_restart_fields():
    with pytest.raises(ValueError, match="seg_restarts"):
        RetrainConfig(seg_restarts=-1)
    with pytest.raises(ValueError, match="restart_floor"):
        RetrainConfig(restart_floor=1.0)


def test_a_config_recorded_before_the_restarts_is_recognised():
    new = json.loads(json.dumps(msnas_preset("default").to_dict()))
    old = _without_restarts(new)
    assert predates_restarts(old, new)
    assert not predates_restarts(new, new)  # already has them: the same configuration, not an older one
    assert not predates_restarts({**old, "seed": 7}, new)
    assert not predates_restarts(_without_restarts(json.loads(json.dumps(
        msnas_preset("default").with_retrain_steps(99).to_dict()))), new)
    assert config_hash(stage_config(new)) == config_hash(old)  # the stages keep their hashes
    smoke = json.loads(json.dumps(msnas_preset("smoke").to_dict()))
    assert not predates_restarts(smoke, smoke)  # restarts off: nothing to migrate, nothing to say


def test_short_proxy_trainings_are_never_restarted():
    retrain = msnas_preset("default").retrain
    assert retrain.proxy(40).seg_restarts == 0 and retrain.proxy(40).steps == 40
    assert retrain.with_steps(40).seg_restarts == 2  # a whole run's shorter schedule keeps the rule


@pytest.mark.parametrize("module", ["cine_rows", "rtdnas"])
def test_a_run_folder_made_before_the_restarts_resumes(tmp_path: Path, module: str):
    from search.methods.rtdnas.experiment import RtdnasExperiment
    from search.train.cine_rows import CineRows

    said = []

    def check(cfg) -> None:
        if module == "rtdnas":
            RtdnasExperiment(cfg, tmp_path, progress=said.append)._check_config()
        else:
            CineRows(space.rows_view(cfg, ()), tmp_path, progress=said.append)._check_config()

    base = rtdnas_preset("smoke")
    cfg = replace(base, retrain=replace(base.retrain, seg_restarts=2))
    old = json.loads(json.dumps((base if module == "rtdnas" else space.rows_view(base, ())).to_dict()))
    (tmp_path / "config.json").write_text(json.dumps(old))
    check(cfg)
    assert any("made before the collapse restarts" in m for m in said)
    assert json.loads((tmp_path / "config.json").read_text())["retrain"]["seg_restarts"] == 2  # recorded now
    check(cfg)  # and the same configuration from then on
    with pytest.raises(ValueError, match="another configuration"):
        check(replace(cfg, retrain=replace(cfg.retrain, seg_restarts=1)))  # a recorded count is a configuration


def _tiny_cine(**retrain):
    cfg = msnas_preset("smoke")
    return replace(cfg, retrain=replace(cfg.retrain, steps=1, eval_every=1, **retrain))


def test_a_collapsed_row_is_trained_again_and_recorded(tmp_path: Path):
    from search.train.cine_rows import CineRows

    cfg = _tiny_cine(seg_restarts=1, restart_floor=0.99)  # one step never reaches .99: every attempt collapses
    row = next(r for r in cfg.rows if r.kind == "unet3d")
    rows = CineRows(cfg, tmp_path / "run")
    result = rows.train_row(row, None)
    record = result["seg_training"]
    assert [a["attempt"] for a in record["attempts"]] == [0, 1] and record["collapsed"]
    assert [a["seed"] for a in record["attempts"]] == [cfg.seed, cfg.seed + 7919]
    folder = tmp_path / "run" / "rows" / row.key
    assert (folder / "train.pt").is_file() and (folder / "train.restart1.pt").is_file()
    text = rows_restarts_markdown({row.key: result}, cfg.retrain.restart_floor, cfg.retrain.seg_restarts)
    assert f"| {row.name} | attempt 0 (seed {cfg.seed})" in text and "| yes |" in text
    assert rows.train_row(row, None) == result  # the finished row is read back, not trained again


def test_rows_without_restarts_record_the_verdict_only(tmp_path: Path):
    from search.train.cine_rows import CineRows

    cfg = _tiny_cine()  # smoke: restarts off, floor 0.3
    row = next(r for r in cfg.rows if r.kind == "unet2d")
    result = CineRows(cfg, tmp_path / "run").train_row(row, None)
    assert len(result["seg_training"]["attempts"]) == 1
    assert not list((tmp_path / "run" / "rows" / row.key).glob("train.restart*"))
    older = {**result, "name": "old row"}
    older.pop("seg_training")
    text = rows_restarts_markdown({row.key: result, "old": older}, 0.3, 0)
    assert "Trained before the rule (one training each, no verdict recorded): old row." in text
    assert "training clips" in text
    collapsed = {**result, "seg_training": {**result["seg_training"], "collapsed": True}}
    copies = {"a": collapsed, "b": {**collapsed, "same_as": "a"}, "c": {**collapsed, "same_network_as": "a"}}
    assert rows_restarts_markdown(copies, 0.3, 0).count("| yes |") == 1  # a copied training is listed once


def test_every_row_network_can_be_reinitialised():
    from search.core.genotypes import MultiscaleGenotype
    from search.methods.rtdnas.streaming import DEFAULT_BASE, run_config
    from search.train.restarts import reinitialise
    from search.train.row_networks import build_row_network

    cfg = msnas_preset("smoke")
    nets = [build_row_network(cfg, r) for r in cfg.rows if r.kind != "msnas"]
    base = json.loads(DEFAULT_BASE.read_text())
    g = MultiscaleGenotype.from_dict(base["genotype"])
    rt = run_config("smoke", None, base["architecture"]["args"])
    row = space.row("ga", "ga", len(g.paths))
    nets.append(build_row_network(space.rows_view(rt, (row,)), row, genotype=g))
    for net in nets:
        before = [p.detach().clone() for p in net.parameters()]
        reinitialise(net, 5)
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("method", ["msnas_hw", "rtdnas"])
def test_the_experiments_hash_their_stages_without_the_restart_fields(tmp_path: Path, monkeypatch, method: str):
    import importlib

    module = importlib.import_module(f"search.methods.{method}.experiment")
    seen = []

    class Stop(Exception):
        pass

    def fake_runner(out, config, **kwargs):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(module, "StageRunner", fake_runner)
    cfg = (msnas_preset if method == "msnas_hw" else rtdnas_preset)("default")
    exp = module.MsnasHwExperiment(cfg, tmp_path) if method == "msnas_hw" else module.RtdnasExperiment(cfg, tmp_path)
    with pytest.raises(Stop):
        exp.run()
    assert seen and not set(RESTART_KEYS) & set(seen[0]["retrain"])
    without = _without_restarts(json.loads(json.dumps(cfg.to_dict())))
    assert config_hash(seen[0]) == config_hash(without)  # the hash a folder made before the restarts recorded
