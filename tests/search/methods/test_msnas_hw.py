"""msnas-hw: presets, patient split, the search loop, decoding glue, report, shipping choice, smoke run."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from search.methods.msnas_hw.config import DataConfig, MsnasHwConfig, SearchConfig, paper_rows, preset
from search.methods.msnas_hw.data import PatientSplit
from search.methods.msnas_hw.report import PAPER_TABLE2, check_targets, pareto, table2_markdown
from search.methods.msnas_hw.report_text import arch_movement
from search.methods.msnas_hw.search import ArchitectureSearch
from tests.search.tiny_supernet import TinySupernet, tiny_loader


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_presets_are_consistent(name):
    cfg = preset(name)
    assert [r.key for r in cfg.rows] == list(PAPER_TABLE2)
    # The paper's lambda, except the default preset (~100x fewer architecture steps; see config.py).
    assert cfg.search.latency_lambda == pytest.approx(1e-3 if name == "default" else 1e-4)
    assert cfg.supernet.pc_k == 4 and cfg.supernet.nodes == 3
    keys = {s.key for s in cfg.searches}
    assert all(r.search in keys for r in cfg.rows if r.kind == "msnas")
    assert {s.latency_aware for s in cfg.searches} == {True, False}
    json.dumps(cfg.to_dict())  # plain JSON


def test_default_and_paper_keep_the_papers_space():
    for name in ("default", "paper"):
        cfg = preset(name)
        assert (cfg.supernet.layers, cfg.supernet.scales) == (8, 4)
        assert cfg.data.clip_length == 20
    assert (preset("paper").data.height, preset("paper").data.width) == (128, 112)
    assert preset("paper").width_divisor == 1


def test_unknown_preset_and_bad_rows_are_rejected():
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fast")
    with pytest.raises(ValueError, match="not configured"):
        MsnasHwConfig(searches=(), rows=paper_rows())
    with pytest.raises(ValueError, match="divisible by 16"):
        DataConfig(height=64, width=56)


def test_seed_override():
    assert preset("smoke", seed=7).seed == 7


# ------------------------------------------------------------------------------------------- split
def test_patient_split_is_disjoint_deterministic_and_one_to_one():
    ids = [f"p{i:03d}" for i in range(14)]
    cfg = DataConfig(n_patients=14, n_test=3, n_val=1)
    a, b = PatientSplit.make(ids, cfg), PatientSplit.make(list(reversed(ids)), cfg)
    assert a == b
    sets = [set(a.test), set(a.val), set(a.weight), set(a.arch)]
    assert sum(len(s) for s in sets) == 14 and len(set().union(*sets)) == 14
    assert (len(a.test), len(a.val)) == (3, 1)
    assert abs(len(a.weight) - len(a.arch)) <= 1
    assert set(a.train) == set(a.weight) | set(a.arch)
    assert PatientSplit.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert PatientSplit.make(ids, replace(cfg, seed=1)) != a


# ---------------------------------------------------------------------------------- search loop



def _search(net, tmp_path, warmup, steps, lam=1e-4, checkpoint=True):
    cfg = SearchConfig(warmup_steps=warmup, search_steps=steps, batch_size=2, latency_lambda=lam, arch_lr=0.05)
    return ArchitectureSearch(net, net.latency, tiny_loader(0), tiny_loader(1), cfg, generator=torch.Generator().manual_seed(0),
                              checkpoint=(tmp_path / "ck.pt") if checkpoint else None, checkpoint_every=1)


def test_warmup_updates_only_weights(tmp_path):
    torch.manual_seed(0)
    net = TinySupernet()
    w0 = net.ops[0].weight.detach().clone()
    history = _search(net, tmp_path, warmup=3, steps=0).run()
    assert [r.phase for r in history] == ["warmup"] * 3
    assert torch.equal(net.alpha.detach(), torch.zeros(2))
    assert not torch.equal(net.ops[0].weight.detach(), w0)


def test_latency_term_pushes_towards_the_cheap_op(tmp_path):
    torch.manual_seed(0)
    net = TinySupernet()
    history = _search(net, tmp_path, warmup=1, steps=30, lam=1.0, checkpoint=False).run()
    assert [r.phase for r in history][:2] == ["warmup", "search"]
    assert all(not math.isnan(r.latency_ms) for r in history[1:])
    w = torch.softmax(net.alpha.detach(), 0)
    assert w[1] > w[0]  # the 1 ms op wins under a strong latency weight


def test_architecture_step_leaves_the_weights_alone(tmp_path):
    torch.manual_seed(0)
    net = TinySupernet()
    search = _search(net, tmp_path, warmup=0, steps=1, lam=1.0, checkpoint=False)
    before = [p.detach().clone() for p in net.weight_parameters()]
    ce, latency_ms = search._arch_step()
    assert math.isfinite(ce) and latency_ms == pytest.approx(5.5)  # uniform softmax over [10, 1] ms
    assert not torch.equal(net.alpha.detach(), torch.zeros(2))
    for p, p0 in zip(net.weight_parameters(), before):
        assert torch.equal(p.detach(), p0) and p.grad is None and p.requires_grad


def test_search_resumes_from_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    first = TinySupernet()
    s = _search(first, tmp_path, warmup=1, steps=2)
    s.run()
    torch.manual_seed(1)
    again = TinySupernet()
    s2 = _search(again, tmp_path, warmup=1, steps=2)
    history = s2.run()  # nothing left to do: restores and returns
    assert len(history) == 3 and s2.step == 3
    assert torch.equal(again.alpha.detach(), first.alpha.detach())
    longer = _search(TinySupernet(), tmp_path, warmup=1, steps=4)
    assert len(longer.run()) == 5


# ------------------------------------------------------------------------------------------ report
def _fake_results(ours_ms, unet_ms, msnas_ms, ours_dice=0.85, msnas_dice=0.855):
    def res(ms, dice):
        lat = {"p50_ms": ms, "p95_ms": ms, "mean_ms": ms, "fps": 1000.0 / ms, "shape": [20, 128, 112]}
        return {"dice": {"per_class": {"RV": dice, "MYO": dice, "LV": dice}, "mean": dice, "std": {}},
                "latency": {"trained": lat, "paper_size": lat}, "params": 10}

    return {"ours_n1": res(ours_ms, ours_dice), "unet3d_d3_if16": res(unet_ms, 0.8), "msnas_n4": res(msnas_ms, msnas_dice)}


def test_targets_are_computed_from_the_numbers():
    cfg = preset("default")
    met = {c.name: c for c in check_targets(cfg, _fake_results(30.0, 60.0, 120.0))}
    assert met["latency ours n=1 / U-net 3D (D3, IF16) [paper_size]"].value == pytest.approx(0.5)
    assert all(c.met for c in met.values())
    missed = {c.name: c for c in check_targets(cfg, _fake_results(90.0, 60.0, 120.0, ours_dice=0.80))}
    assert not missed["latency ours n=1 / MS-NAS n=4 [paper_size]"].met
    assert not missed["mean Dice MS-NAS n=4 - ours n=1"].met
    assert not missed["real time ours_n1 at 20x128x112: p95 latency ms"].met
    # the one real-time rule decides on p95: a fast median with a slow tail misses
    tail = _fake_results(30.0, 60.0, 120.0)
    slow_tail = {**tail["ours_n1"]["latency"]["trained"], "p95_ms": 80.0}
    tail["ours_n1"]["latency"] = {"trained": slow_tail, "paper_size": slow_tail}
    assert not {c.name: c for c in check_targets(cfg, tail)}["real time ours_n1 at 20x128x112: p95 latency ms"].met


def test_table_lists_every_row_with_the_papers_numbers():
    cfg = preset("default")
    text = table2_markdown(cfg, _fake_results(30.0, 60.0, 120.0))
    for row in cfg.rows:
        assert row.name in text
    assert "not run" in text  # rows without results are shown as such
    assert "*0.867*" in text and "*139*" in text


def test_arch_movement_measures_distance_from_uniform():
    uniform = {"beta_probs": [[[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]],
               "cells": {"ns": {"edges": [{"op_probs": [0.25] * 4}]}}}
    mv = arch_movement(uniform)
    assert mv["beta_max_mean"] == pytest.approx(mv["beta_uniform_mean"]) == pytest.approx((0.5 + 1 / 3) / 2)
    assert mv["alpha_max_mean"] == pytest.approx(mv["alpha_uniform"]) == pytest.approx(0.25)
    moved = {"beta_probs": [[[0.0, 0.9, 0.1], [0.8, 0.1, 0.1]]],
             "cells": {"ns": {"edges": [{"op_probs": [0.7, 0.1, 0.1, 0.1]}]}}}
    mv = arch_movement(moved)
    assert mv["beta_max"] == pytest.approx(0.9) and mv["beta_max_mean"] == pytest.approx(0.85)
    assert mv["alpha_max"] == pytest.approx(0.7)


def test_pareto_front():
    pts = [("a", 10.0, 0.5), ("b", 20.0, 0.7), ("c", 30.0, 0.6), ("d", 40.0, 0.9)]
    assert [p[0] for p in pareto(pts)] == ["a", "b", "d"]


def test_shipping_prefers_budget_then_fastest_useful():
    from search.methods.msnas_hw.shipping import choose_row

    cfg = preset("default")
    results = _fake_results(40.0, 60.0, 120.0)
    row, why = choose_row(cfg, results)
    assert row.key == "ours_n1" and "meeting" in why
    slow = _fake_results(80.0, 60.0, 120.0)
    row, why = choose_row(cfg, slow)
    assert row.key == "ours_n1" and "NOT" in why
    useless = _fake_results(40.0, 60.0, 120.0, ours_dice=0.3, msnas_dice=0.3)
    assert choose_row(cfg, useless) is None


# ------------------------------------------------------------------------------------- end to end
def _reject_nan(constant):
    raise AssertionError(f"results.json holds {constant}; it must be strict JSON")


@pytest.mark.slow
def test_smoke_preset_end_to_end_and_resume(tmp_path):
    from app.cards import load_card
    from search.cli import main

    out = tmp_path / "run"
    docs = tmp_path / "docs"
    assert main(["msnas-hw", "--preset", "smoke", "--out", str(out), "--docs-dir", str(docs)]) == 0
    table = (out / "report" / "table2.md").read_text()
    summary = json.loads((docs / "results.json").read_text(), parse_constant=_reject_nan)  # strict JSON
    assert set(summary["rows"]) == {r.key for r in preset("smoke").rows}
    assert summary["rows"]["ours_n2"]["latency_trained"]["p50_ms"] > 0 and len(summary["rows"]["ours_n2"]["paths"]) == 2
    assert summary["ship_choice"]["row"] in {"ours_n1", "ours_n2", "msnas_n4"}
    assert "## Table 2" in (docs / "README.md").read_text() and (docs / "frontier.png").is_file()
    assert "loadavg_1min_before" in json.dumps(summary["measurement_load"])
    for row in preset("smoke").rows:
        assert row.name + " (ours)" in table and "not run" not in table
    for key in ("msnas", "hw_n2"):
        doc = json.loads((out / "searches" / key / "result.json").read_text())
        assert doc["history"][-1]["phase"] == "search"
    hw = json.loads((out / "searches" / "hw_n2" / "result.json").read_text())
    assert all(not math.isnan(r["latency_ms"]) for r in hw["history"] if r["phase"] == "search")
    assert set(hw["genotypes"]) == {"1", "2"}
    assert set(hw["convergence"]) == {"1", "2"} and hw["arch_trace"]["steps"][0] == 0  # issue 16
    assert "## Did the searches converge?" in (docs / "README.md").read_text()
    for key in ("ours_n1", "msnas_n4"):
        res = json.loads((out / "rows" / key / "result.json").read_text())
        assert set(res["dice"]["per_class"]) == {"RV", "MYO", "LV"}
        assert res["latency"]["trained"]["p50_ms"] > 0
    cards = list((out / "models").glob("*.json"))
    assert len(cards) == 1
    card = load_card(cards[0]).verify()
    assert card.method == "msnas-hw" and card.clip_length == 4 and card.input_name == "clip"
    assert isinstance(card.raw["search"]["convergence"]["converged"], bool)
    before = json.loads((out / "rows" / "ours_n1" / "result.json").read_text())
    weights_stamp = (out / "rows" / "ours_n1" / "weights.pt").stat().st_mtime_ns
    search_stamp = (out / "searches" / "msnas" / "result.json").stat().st_mtime_ns
    assert main(["msnas-hw", "--preset", "smoke", "--out", str(out), "--no-ship"]) == 0  # resumes: nothing redone
    after = json.loads((out / "rows" / "ours_n1" / "result.json").read_text())
    assert after["dice"] == before["dice"] and after["latency"] == before["latency"]
    assert (out / "rows" / "ours_n1" / "weights.pt").stat().st_mtime_ns == weights_stamp
    assert (out / "searches" / "msnas" / "result.json").stat().st_mtime_ns == search_stamp
    stages = json.loads((out / "stages.json").read_text())["stages"]  # why each stage ran or not
    assert stages["search:msnas"] == {**stages["search:msnas"], "status": "skipped",
                                      "reason": "skipped: result exists at searches/msnas/result.json, config hash unchanged"}
    assert stages["row:ours_n1"]["status"] == "skipped" and stages["latency-table"]["status"] == "skipped"
    assert stages["report"]["reason"] == "ran: always runs (it declares no result files)"


def test_changed_config_refuses_an_old_run_folder(tmp_path):
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(preset("smoke").to_dict()))
    with pytest.raises(ValueError, match="another configuration"):
        MsnasHwExperiment(preset("smoke", seed=3), out)._check_config()


# ------------------------------------------------------------------------------ space (core glue)
def _tiny_cfg():
    from search.methods.msnas_hw.config import SupernetConfig

    cfg = preset("smoke")
    return replace(cfg, supernet=SupernetConfig(layers=2, scales=2, channels=16),
                   data=replace(cfg.data, clip_length=2, height=16, width=16))


def test_latency_term_reaches_alpha_gamma_and_beta():
    from search.latency.lut import LatencyTable
    from search.methods.msnas_hw import space

    cfg = _tiny_cfg()
    table = LatencyTable()
    for i, key in enumerate(space.required_keys(cfg)):
        table.set(key, 1.0 + i % 5)
    supernet = space.build_supernet(cfg, cfg.trained_channels, seed=0)
    term = space.latency_term(cfg, supernet, table, n_paths=1)
    lat = term(torch.Generator().manual_seed(0))
    assert lat.item() > 0
    lat.backward()
    grads = {n: p.grad for n, p in supernet.named_arch_parameters()}
    assert grads["beta"] is not None and grads["beta"].abs().sum() > 0
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "gamma" in n)
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "alpha" in n)
    assert all(p.grad is None for p in supernet.weight_parameters())
    # two different Gumbel draws give different estimates; the softmax estimate is deterministic
    assert term(torch.Generator().manual_seed(1)).item() != pytest.approx(lat.item(), abs=1e-9)
    assert space.expected_latency(cfg, supernet, table, 1) == pytest.approx(space.expected_latency(cfg, supernet, table, 1))


def test_decode_gives_n_distinct_paths_and_a_trainable_network():
    from search.methods.msnas_hw import space

    cfg = _tiny_cfg()
    supernet = space.build_supernet(cfg, cfg.trained_channels, seed=0)
    with torch.no_grad():
        supernet.beta.zero_()
        supernet.beta[0, 0, 1] = 3.0  # layer 0: prefer ns
    g2 = space.decode(supernet, 2)
    assert len(g2.paths) == 2 and len(set(g2.paths)) == 2 and g2.paths[0].kinds[0] == "ns"
    assert all(len(g2.cells[k].edges) == 3 for k in ("ep", "ns", "ct"))  # one incoming edge per node
    net = space.build_derived(g2, cfg.trained_channels, cfg.supernet)
    out = net(torch.randn(1, 1, 2, 16, 16))
    assert out.shape == (1, 4, 2, 16, 16)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())
