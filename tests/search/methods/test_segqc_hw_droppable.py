"""segqc-hw with droppable cell inputs (issue 16): a residual U-net is a point of the space, the paper's space
is untouched, the supernet, the decoder, the random control and the CLI all see the same space."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from search.core.decode import decode_cell, decode_nasunet
from search.core.derived.nasunet import DerivedNasUnet
from search.core.mixed import ArchWeighting
from search.core.supernets.nasunet import (DOWN_SPEC, UP_SPEC, NasUnetConfig, NasUnetSupernet, cell_specs,
                                           unet_like_genotype)
from search.latency.lut import LatencyTable
from search.methods.segqc_hw.config import preset
from tests.search.methods.test_segqc_hw_gdas import _Table
from tests.search.methods.test_segqc_hw_random_control import _alphas_for


def _droppable(cfg=None, nodes: int = 2):
    cfg = cfg or preset("smoke")
    return replace(cfg, space=replace(cfg.space, nodes=nodes, droppable_inputs=True))


def test_cell_specs_add_zero_to_the_scaling_input_edges_only():
    assert cell_specs(3, False) == (DOWN_SPEC, UP_SPEC)  # the paper's space, as before
    down, up = cell_specs(2, True)
    assert (down.n_nodes, up.n_nodes) == (2, 2)
    for spec in (down, up):
        for e, (src, _, op_set) in enumerate(spec.edges):
            paper = (DOWN_SPEC if spec is down else UP_SPEC).edges[e][2] if e < len(DOWN_SPEC.edges) else None
            if src < spec.n_inputs and op_set != "segqc_normal":
                assert spec.edge_ops(e)[-1] == "zero" and paper is not None and paper != op_set
            else:  # inner edges and the Up cell's skip edge keep their set (which already holds zero)
                assert "zero" in spec.edge_ops(e)
    assert "zero" not in DOWN_SPEC.edge_ops(0) and "zero" not in UP_SPEC.edge_ops(0)


def test_a_residual_unet_is_a_point_of_the_droppable_space_and_not_of_the_papers():
    unet = unet_like_genotype()
    down, up = cell_specs(2, True)
    for spec, cell in ((down, unet.down), (up, unet.up)):
        assert decode_cell(spec, "op", _alphas_for(spec, cell)) == cell  # the decoder returns it
    # in the paper's space every Down cell reads its prev-prev input: no plain U-net is reachable
    paper_down, _ = cell_specs(2, False)
    rng = np.random.default_rng(0)
    for _ in range(50):
        alphas = [rng.normal(size=len(paper_down.edge_ops(e))) * 3 for e in range(len(paper_down.edges))]
        assert any(edge.src == 0 for edge in decode_cell(paper_down, "op", alphas).edges)


def test_the_unet_like_network_reads_only_its_previous_cells_and_runs():
    cfg = NasUnetConfig(num_classes=4, init_filters=8, depth=4, n_nodes=2, droppable_inputs=True)
    net = DerivedNasUnet(unet_like_genotype(), cfg, seed=0).eval()
    for cell in net.cells:  # the prev-prev alignment is not built: no kept edge reads it
        assert isinstance(cell.preprocess[0], torch.nn.Identity)
        assert [op.op_name for op in cell.ops] in (["down_conv", "conv"], ["up_conv", "identity", "conv"])
    with torch.no_grad():
        logits, uncertainty = net(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 4, 64, 64) and uncertainty.shape == (2, 1, 64, 64)
    # the same genotype in the paper-space config builds the same network (a genotype says what it reads)
    paper_cfg = dataclasses.replace(cfg, droppable_inputs=False)
    same = DerivedNasUnet(unet_like_genotype(), paper_cfg, seed=0)
    assert [type(m) for m in same.modules()] == [type(m) for m in net.modules()]


def test_the_droppable_supernet_searches_the_extra_candidate_and_decodes_dropped_inputs():
    cfg = NasUnetConfig(num_classes=2, init_filters=4, depth=2, n_nodes=2, droppable_inputs=True)
    net = NasUnetSupernet(cfg, seed=0)
    names = {n for n, _ in net.cell_arch.named_parameters()}
    assert {"down.alpha_segqc_down_or_zero", "up.alpha_segqc_up_or_zero", "up.alpha_segqc_normal"} <= names
    assert net.cell_arch["down"].alpha_segqc_down_or_zero.shape[1] == 6  # 5 down ops + zero
    x = torch.rand(2, 3, 32, 32)
    logits, _ = net(x)
    assert logits.shape == (2, 2, 32, 32)
    logits, _ = net(x, ArchWeighting.gdas(torch.Generator().manual_seed(0), 1.0))
    assert torch.isfinite(logits).all()
    with torch.no_grad():  # zero wins the prev-prev edges: the decoded cells do not read input 0
        arch = net.cell_arch["down"]
        for e, (src, _, _) in enumerate(arch.spec.edges):
            if src == 0:
                arch.alpha_segqc_down_or_zero[arch._rows[e][1], -1] = 5.0
    assert all(edge.src != 0 for edge in decode_nasunet(net).down.edges)
    # the paper's supernet is unchanged: same parameter names and values for the same seed
    paper = NasUnetSupernet(dataclasses.replace(cfg, droppable_inputs=False, n_nodes=3), seed=0)
    assert {n for n, _ in paper.cell_arch.named_parameters()} == {
        "down.alpha_segqc_down", "down.alpha_segqc_normal", "up.alpha_segqc_up", "up.alpha_segqc_normal"}


def test_random_control_draws_from_the_droppable_space():
    from search.methods.segqc_hw.random_control import change_one_op, random_genotype, swap_one_cell

    cfg = _droppable()
    down, up = cell_specs(2, True)
    rng = np.random.default_rng(1)
    draws = [random_genotype(cfg, rng) for _ in range(40)]
    for genotype in draws:
        for spec, cell in ((down, genotype.seg.down), (up, genotype.seg.up)):
            assert decode_cell(spec, "op", _alphas_for(spec, cell)) == cell
    assert any(sum(e.src == 0 for e in g.seg.down.edges) < 2 for g in draws)  # some nodes drop their prev-prev
    changed = change_one_op(swap_one_cell(draws[0], cfg, rng), cfg, rng)
    for spec, cell in ((down, changed.seg.down), (up, changed.seg.up)):
        assert decode_cell(spec, "op", _alphas_for(spec, cell)) == cell
    # the paper's space draws exactly what it drew before the option existed
    paper = preset("smoke")
    from search.core.sampling import sample_random_genotype

    assert random_genotype(paper, np.random.default_rng(5)) == sample_random_genotype(
        "segqc", np.random.default_rng(5), n_nodes=paper.space.nodes)


def test_config_hashes_stay_and_the_lookup_table_prices_a_dropped_input_at_nothing():
    from search.methods.segqc_hw.experiment import search_config
    from search.methods.segqc_hw.latency_model import FrameworkLatency
    from search.methods.segqc_hw.search import qc_config, seg_config

    cfg = preset("smoke")
    assert "droppable_inputs" not in cfg.to_dict()["space"]  # hashes of existing runs unchanged
    drop = _droppable(cfg, nodes=cfg.space.nodes)
    assert drop.to_dict()["space"]["droppable_inputs"] is True
    assert search_config(drop, 0.001, 0) != search_config(cfg, 0.001, 0)
    assert seg_config(drop).droppable_inputs and not seg_config(cfg).droppable_inputs
    latency = FrameworkLatency(_Table(), 32, seg_config(drop), qc_config(drop))
    from search.core.genotypes import CellEdge
    from search.methods.segqc_hw.random_control import random_genotype

    genotype = random_genotype(drop, np.random.default_rng(0))
    unet = dataclasses.replace(genotype, seg=unet_like_genotype())
    down = unet.seg.down
    reads_pp = dataclasses.replace(unet, seg=dataclasses.replace(unet.seg, down=dataclasses.replace(
        down, edges=(CellEdge(0, 2, "down_conv"), *down.edges))))
    # the prev-prev edge costs its op and the alignment of its input; dropped, both are gone
    assert latency.of_genotype(reads_pp) > latency.of_genotype(unet) + 0.1  # _Table's cheapest entry


def _cli_config(monkeypatch, tmp_path: Path):
    """``config(*flags)``: the ``SegQcConfig`` that ``segqc-hw --preset default FLAGS`` would run (the run stubbed)."""
    from search.methods.segqc_hw import cli

    seen = {}
    monkeypatch.setattr("search.methods.segqc_hw.experiment.run_segqc_hw",
                        lambda cfg, paths, device, stop_after, only_searches=None, random_controls=True: seen.setdefault("cfg", cfg) and "ok")
    parser = argparse.ArgumentParser()
    cli.configure(parser)

    def config(*flags: str):
        cli.run(parser.parse_args(["--preset", "default", *flags, "--out", str(tmp_path / "run"), "--no-ship"]))
        return seen.pop("cfg")

    return config


def test_cli_space_and_lambda_flags_reach_the_config(monkeypatch, tmp_path: Path):
    config = _cli_config(monkeypatch, tmp_path)
    cfg = config("--seg-init-filters", "8", "--nodes", "2", "--droppable-inputs", "--lambda2", "0.005",
                 "--search-seeds", "0", "1", "2", "--sensitivity-lambda2")
    assert cfg.search.seeds == (0, 1, 2)
    assert (cfg.space.seg_init_filters, cfg.space.nodes, cfg.space.droppable_inputs) == (8, 2, True)
    assert cfg.search.lambda2 == 0.005 and cfg.search.sensitivity_lambda2 == ()
    cfg = config()
    assert cfg.space == preset("default").space and cfg.search == preset("default").search
    with pytest.raises(SystemExit, match="--nodes must be at least 1"):
        config("--nodes", "0")
    with pytest.raises(SystemExit, match="each seed once"):
        config("--search-seeds", "1", "1")
    with pytest.raises(SystemExit, match="latency weights must be >= 0"):
        config("--sensitivity-lambda2", "0.01", "-1")


def test_the_seed_spread_lists_every_seed_and_marks_the_one_shown():
    from search.methods.segqc_hw.experiment import seed_summary
    from search.methods.segqc_hw.report import seeds_markdown

    def scores(test, val, mae=0.05):
        return {"test": {"dice_mean": test, "qc_mae": mae}, "val": {"dice_mean": val, "qc_mae": mae}}

    record = {"convergence": {"converged": True, "mean_relative_drop": 0.5}}
    seeds = [seed_summary(0, scores(0.80, 0.70), record, 20.0), seed_summary(1, scores(0.74, 0.75), {}, 18.0)]
    assert seeds[0]["val_score"] == pytest.approx(0.65) and seeds[1]["converged"] is None
    results = {"rows": {"searched_nohw": {"seeds": seeds, "search_seed": 1}, "searched_hw": {"seeds": seeds[:1]}}}
    text = seeds_markdown(results)
    lines = [line for line in text.splitlines() if "lambda2 = 0)" in line]
    assert len(lines) == 3 and "| 0 | yes | 50% | 20.0 | 0.650 | 0.800 |" in lines[0]
    assert lines[1].endswith("| yes |") and "| n/a | n/a |" in lines[1]
    assert "| spread | | | | | 0.060 |" in lines[2]
    assert seeds_markdown({"rows": {"searched_hw": {"seeds": seeds[:1]}}}) == ""  # one seed: no section


def test_keep_prev_drops_only_the_prev_prev_input_so_every_node_reads_the_next_level():
    from search.methods.segqc_hw.random_control import random_genotype

    down, up = cell_specs(2, True, keep_prev=True)
    assert down.input_op_sets == ("segqc_down_or_zero", "segqc_down")
    assert up.input_op_sets == ("segqc_up_or_zero", "segqc_up", "segqc_normal")
    kept = unet_like_genotype(keep_prev=True)
    for spec, cell in ((down, kept.down), (up, kept.up)):
        assert decode_cell(spec, "op", _alphas_for(spec, cell)) == cell
    # the residual U-net whose second node reads only the first is not a point of it: prev's edges always stay
    plain = unet_like_genotype()
    prev_to_second = next(e for e, (src, dst, _) in enumerate(down.edges) if (src, dst) == (1, 3))
    assert "zero" not in down.edge_ops(prev_to_second) and not any((e.src, e.dst) == (1, 3) for e in plain.down.edges)
    cfg = replace(_droppable(), space=replace(_droppable().space, keep_prev=True))
    assert cfg.to_dict()["space"]["keep_prev"] is True and "keep_prev" not in _droppable().to_dict()["space"]
    rng = np.random.default_rng(3)
    for _ in range(30):
        g = random_genotype(cfg, rng)
        for cell in (g.seg.down, g.seg.up):
            nodes = range(cell.n_inputs, cell.n_inputs + cell.n_nodes)
            assert all(any(e.src == 1 and e.dst == n for e in cell.edges) for n in nodes)
    net = NasUnetSupernet(NasUnetConfig(init_filters=4, depth=2, n_nodes=2, droppable_inputs=True, keep_prev=True))
    assert net.cell_arch["down"].alpha_segqc_down.shape[0] == 2  # the two prev edges, no zero candidate
    assert net(torch.rand(1, 3, 32, 32))[0].shape == (1, 2, 32, 32)


def test_cli_droppable_inputs_takes_which(monkeypatch, tmp_path: Path):
    config = _cli_config(monkeypatch, tmp_path)
    space = config("--droppable-inputs", "prev-prev").space
    assert (space.droppable_inputs, space.keep_prev) == (True, True)
    space = config("--droppable-inputs").space
    assert (space.droppable_inputs, space.keep_prev) == (True, False)


def test_input_cost_by_use_is_recorded_only_when_chosen_and_reaches_the_estimator(monkeypatch, tmp_path: Path):
    from search.methods.segqc_hw.experiment import search_config
    from search.methods.segqc_hw.latency_model import framework_latency

    config = _cli_config(monkeypatch, tmp_path)
    plain = config("--droppable-inputs", "prev-prev")
    by_use = config("--droppable-inputs", "prev-prev", "--input-cost", "by-use")
    assert plain.search.input_cost == "always" and by_use.search.input_cost == "by_use"
    assert "input_cost" not in plain.to_dict()["search"]  # hashes of the runs made before the option unchanged
    assert by_use.to_dict()["search"]["input_cost"] == "by_use"
    assert search_config(by_use, 0.001, 0) != search_config(plain, 0.001, 0)
    assert config("--input-cost", "always").to_dict() == config().to_dict()
    with pytest.raises(ValueError, match="unknown input cost"):
        dataclasses.replace(plain.search, input_cost="sometimes")
    monkeypatch.setattr("search.methods.segqc_hw.latency_model.check_statistic", lambda table, path: None)
    table = LatencyTable()
    assert framework_latency(by_use, table, None, None).inputs_by_use
    assert not framework_latency(plain, table, None, None).inputs_by_use


def test_stem_convs_adds_full_resolution_convs_and_one_stays_the_papers_stem(monkeypatch, tmp_path: Path):
    from search.core.estimators import predict_latency
    from search.core.latency_sites import trace_sites
    from search.methods.segqc_hw.experiment import search_config
    from search.methods.segqc_hw.search import seg_config

    config = _cli_config(monkeypatch, tmp_path)
    plain, two = config(), config("--stem-convs", "2")
    assert "stem_convs" not in plain.to_dict()["space"]  # hashes and saved weights of every earlier run unchanged
    assert two.to_dict()["space"]["stem_convs"] == 2 and search_config(two, 0.001, 0) != search_config(plain, 0.001, 0)
    with pytest.raises(SystemExit, match="--stem-convs must be at least 1"):
        config("--stem-convs", "0")
    genotype = unet_like_genotype(keep_prev=True)
    one_cfg = seg_config(plain)
    two_cfg = dataclasses.replace(one_cfg, stem_convs=2)
    one = DerivedNasUnet(genotype, one_cfg)
    assert any(k.startswith("stem.body.") for k in one.state_dict())  # the stem op itself, as before the option
    for net in (DerivedNasUnet(genotype, two_cfg), NasUnetSupernet(two_cfg, seed=0)):
        assert [m.op_name for m in net.stem] == ["stem", "conv"]
        assert net.stem[1].c_in == net.stem[1].c_out == two_cfg.channels(0)
    derived = DerivedNasUnet(genotype, two_cfg).eval()
    with torch.no_grad():
        assert derived(torch.rand(1, 3, 32, 32))[0].shape == (1, one_cfg.num_classes, 32, 32)
    keys = trace_sites(derived, (3, 32, 32)).outside_under("stem")
    assert [k.op for k in keys] == ["stem", "conv"] and keys[1].shape == (32, 32)
    assert predict_latency(derived, (3, 32, 32), _Table()) == pytest.approx(
        predict_latency(one, (3, 32, 32), _Table()) + _Table().get(keys[1]))


def test_the_report_names_the_space_and_its_departures_from_the_papers(monkeypatch, tmp_path: Path):
    from search.methods.segqc_hw.report import space_text

    config = _cli_config(monkeypatch, tmp_path)
    assert space_text(config().to_dict()) == "Segmentation space: 4 initial filters, depth 4, 3 nodes per cell."
    text = space_text(config("--seg-init-filters", "8", "--nodes", "2", "--droppable-inputs", "prev-prev",
                             "--stem-convs", "2", "--input-cost", "by-use").to_dict())
    assert text == ("Segmentation space: 8 initial filters, depth 4, 2 nodes per cell, the prev-prev input of a cell may "
                    "be dropped, 2 stem convs, a droppable input's alignment priced by the probability it is read.")
    assert "every cell input may be dropped" in space_text(config("--droppable-inputs").to_dict())
