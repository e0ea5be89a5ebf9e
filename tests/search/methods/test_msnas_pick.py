"""msnas-hw --cell-candidates: ours n=1 picked among candidates (argmax + cells drawn edge-then-op, on its top path
or a drawn one), each trained briefly on the weight patients and scored on the architecture patients; the picked
row beside ours n=1 in Table 2."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from search.core.decode import decode_cell, sample_cell
from search.methods.msnas_hw.config import PickConfig, preset
from search.methods.msnas_hw.experiment import pick_key, row_genotype


def test_pick_is_off_by_default_and_adds_one_row_beside_ours_n1():
    for name in ("smoke", "default", "paper"):
        cfg = preset(name)
        assert cfg.pick.candidates == 1 and "pick" not in cfg.to_dict()
        assert all("picked" not in r for r in cfg.to_dict()["rows"])  # configs without the pick are unchanged
        on = cfg.with_pick(PickConfig(candidates=3, paths="both"))
        base = next(r for r in on.rows if r.key == "ours_n1")
        assert [r.key for r in on.rows] == [r.key for r in cfg.rows] + ["ours_n1_pick"]
        picked = on.rows[-1]
        assert picked.picked and picked.search == base.search and picked.n_paths == 1 and picked.latency_aware
        doc = on.to_dict()
        assert doc["pick"]["candidates"] == 3 and doc["pick_latency_ratio"] == 0.3 and doc["rows"][-1]["picked"]
        assert on.with_pick(PickConfig(candidates=2)).rows == replace(on, pick=PickConfig(candidates=2)).rows
    with pytest.raises(ValueError, match="the pick is off"):
        replace(preset("smoke").with_pick(PickConfig(candidates=2)), pick=PickConfig())
    two_paths = replace(preset("smoke").with_pick(PickConfig(candidates=2)).rows[-1], n_paths=2)
    with pytest.raises(ValueError, match="one-path"):
        replace(preset("smoke"), pick=PickConfig(candidates=2), rows=preset("smoke").rows + (two_paths,))


def test_edge_op_cells_are_drawn_edge_then_op_and_never_zero():
    from search.core.supernets.multiscale import MultiscaleSupernet
    from search.train.row_networks import multiscale_config

    cfg = preset("smoke")
    spec = MultiscaleSupernet(multiscale_config(cfg.supernet, cfg.trained_channels), seed=0).cell_arch["ep"].spec
    assert any(len(spec.incoming(d)) > 1 for d in range(spec.n_inputs, spec.n_inputs + spec.n_nodes))
    n_edges = len(spec.edges)
    ops = [spec.edge_ops(e) for e in range(n_edges)]
    # every edge strongly prefers its first op (conv); the gamma of each node prefers its first incoming edge
    assert all(o[0] == "conv" and "zero" in o for o in ops)
    alphas = [np.array([5.0 if k == 0 else 0.0 for k in range(len(o))]) for o in ops]
    gamma = np.zeros(n_edges)
    for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
        gamma[spec.incoming(dst)[0]] = 6.0
    argmax = decode_cell(spec, "edge_op", alphas, gamma, edges_per_node=1)
    rng = np.random.default_rng(0)
    draws = [sample_cell(spec, "edge_op", alphas, rng, gamma=gamma) for _ in range(200)]
    assert all(edge.op != "zero" for d in draws for edge in d.edges)
    assert all(len(d.edges) == spec.n_nodes for d in draws)  # one (input, op) pair per node
    same = sum(d == argmax for d in draws) / len(draws)
    assert 0.7 < same < 1.0  # mostly the argmax (~.91 here), not always: a draw, not a decode
    again = [sample_cell(spec, "edge_op", alphas, np.random.default_rng(0), gamma=gamma) for _ in range(1)]
    assert again[0] == draws[0]  # seeded
    with pytest.raises(ValueError, match="needs gamma"):
        sample_cell(spec, "edge_op", alphas, rng)
    with pytest.raises(ValueError, match="relaxation"):
        sample_cell(spec, "op", alphas, rng)


def test_smoke_pick_end_to_end(tmp_path, monkeypatch):
    """The smoke preset with 2 candidates on both paths and a bound every candidate meets (the smoke networks are
    all above 0.3x MS-NAS n=4's tiny table latency): 3 candidates, trained on the weight patients and scored on the
    architecture ones (never the test patients), pick.json, the picked row, rows.md; resumes; stale files refused."""
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    calls = []
    original = MsnasHwExperiment.train_row

    def recording(self, row, genotype, **kw):
        calls.append((row.key, kw.get("train_ids"), kw.get("eval_ids")))
        return original(self, row, genotype, **kw)

    monkeypatch.setattr(MsnasHwExperiment, "train_row", recording)
    out = tmp_path / "run"
    cfg = replace(preset("smoke").with_pick(PickConfig(candidates=2, train_steps=1, paths="both")),
                  pick_latency_ratio=100.0)

    def run():
        return MsnasHwExperiment(cfg, out, progress=lambda m: None).run_rows(["ours_n1", "ours_n1_pick"])

    run()
    doc = json.loads((out / "pick.json").read_text())
    assert [c["source"] for c in doc["candidates"]] == ["argmax", "sampled", "sampled"]
    assert [c["path"] for c in doc["candidates"]] == ["top", "top", "drawn"]
    assert doc["train_steps"] == 1 and doc["paths"] == "both" and doc["search"] == "hw_n2"
    assert doc["bound_ms"] == pytest.approx(100.0 * doc["msnas_n4_lut_ms"])
    assert (out / "searches" / "msnas" / "result.json").is_file()  # the bound's reference was searched
    assert all(c["within_bound"] and "val_dice" in c for c in doc["candidates"])
    split = json.loads((out / "split.json").read_text())
    trained = [(k, t, e) for k, t, e in calls if k.startswith("pick_c")]
    assert len(trained) == 3 - sum("same_network_as" in c for c in doc["candidates"])
    assert all(list(t) == split["weight"] and list(e) == split["arch"] for _, t, e in trained)  # never the test patients
    assert all(t is None and e is None for k, t, e in calls if not k.startswith("pick_c"))  # the rows: the table's
    for c in doc["candidates"]:
        own = c.get("same_network_as", c["index"])
        res = json.loads((out / "rows" / f"pick_c{own}" / "result.json").read_text())
        assert res["patients"] == {"trained_on": len(split["weight"]), "scored_on": len(split["arch"]),
                                   "scored_on_test": False}
        assert c["val_dice"] == res["dice"]["mean"]
    first, second = doc["candidates"][1]["genotype"], doc["candidates"][2]["genotype"]
    assert first["cells"] == second["cells"]  # the same cell draw on the top path, then on a drawn path
    best = max(doc["candidates"], key=lambda c: (c["val_dice"], -c["index"]))
    assert doc["picked"] == best["index"]
    picked = json.loads((out / "rows" / "ours_n1_pick" / "result.json").read_text())
    assert picked["genotype"] == doc["candidates"][doc["picked"]]["genotype"]
    assert "## The pick of ours n=1" in (out / "rows.md").read_text()
    assert json.loads((out / "rows.json").read_text())["pick"]["picked"] == doc["picked"]
    # the report layer never lists a candidate as a row
    from search.report.msnas import load_rows

    assert set(load_rows(out)) == {"ours_n1", "ours_n1_pick"}
    # resumes: pick.json is read back, no candidate trained again (the rows' stages read their results back)
    calls.clear()
    run()
    assert json.loads((out / "pick.json").read_text()) == doc
    assert not [k for k, _, _ in calls if k.startswith("pick_c")]
    # a picked row trained for another pick is refused, with what to delete
    kept = (out / "rows" / "ours_n1_pick" / "result.json").read_text()
    stale = json.loads(kept)
    stale["genotype"] = doc["candidates"][1 if doc["picked"] != 1 else 0]["genotype"]
    (out / "rows" / "ours_n1_pick" / "result.json").write_text(json.dumps(stale))
    with pytest.raises(ValueError, match="trained for another pick"):
        run()
    (out / "rows" / "ours_n1_pick" / "result.json").write_text(kept)
    # a pick.json made under another bound (or rule) is refused, keeping the candidates' rows
    assert doc["bound_rule"] == "max(ratio x MS-NAS n=4, argmax)"
    for key, value in (("bound_ms", doc["bound_ms"] / 2), ("bound_rule", None)):
        (out / "pick.json").write_text(json.dumps({**doc, key: value}))
        (out / "stages.json").unlink()
        with pytest.raises(ValueError, match="another latency bound.*rows/pick_c\\* are kept"):
            run()
    (out / "pick.json").write_text(json.dumps(doc))
    # a pick.json of another search is refused
    doc["candidates"][0]["genotype"]["paths"] = [["skip"] * len(doc["candidates"][0]["genotype"]["paths"][0])]
    (out / "pick.json").write_text(json.dumps(doc))
    (out / "stages.json").unlink()
    with pytest.raises(ValueError, match="made from another search.*rows/ours_n1_pick"):
        run()


def test_pick_flags_need_candidates_and_the_row_genotype_follows_the_pick(capsys):
    from search.cli import main

    assert main(["msnas-hw", "--preset", "smoke", "--candidate-steps", "3"]) == 2
    assert "--cell-candidates K" in capsys.readouterr().err
    cfg = preset("smoke").with_pick(PickConfig(candidates=2))
    ours, picked = cfg.rows_named(["ours_n1", "ours_n1_pick"])
    genotypes = {ours.search: {1: "argmax"}, pick_key(picked): {1: "picked"}}
    assert row_genotype(ours, genotypes) == "argmax" and row_genotype(picked, genotypes) == "picked"
    assert row_genotype(cfg.rows_named(["unet3d_d3_if16"])[0], genotypes) is None


def test_one_path_genotypes_whose_skips_fall_elsewhere_are_the_same_network():
    """A skip step is the identity: ct ct at layers 2-3 or at layers 0 and 3 build the same network (same cells, same
    scales, the same initial weights), so the pick trains it once."""
    import torch

    from search.core.genotypes import PathGenotype
    from search.methods.msnas_hw.experiment import same_network_key
    from search.train.row_networks import build_row_network

    from search.methods.msnas_hw import space

    cfg = preset("smoke")
    row = cfg.rows_named(["ours_n1"])[0]
    layers = cfg.supernet.layers
    decoded = space.decode(space.build_supernet(cfg, cfg.trained_channels, seed=0), 1)
    base = replace(decoded, paths=(PathGenotype(("skip",) * (layers - 2) + ("ct", "ct")),))
    moved = replace(base, paths=(PathGenotype(("ct",) + ("skip",) * (layers - 2) + ("ct",)),))
    other = replace(base, paths=(PathGenotype(("ct",) + ("ns",) * (layers - 2) + ("ct",)),))
    assert same_network_key(base) == same_network_key(moved) != same_network_key(other)
    x = torch.randn(1, 1, cfg.data.clip_length, cfg.data.height, cfg.data.width)
    torch.manual_seed(0)
    a = build_row_network(cfg, row, genotype=base).eval()
    torch.manual_seed(0)
    b = build_row_network(cfg, row, genotype=moved).eval()
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
    two = replace(base, paths=base.paths + (other.paths[0],))
    assert same_network_key(two) == two.to_json()


def test_a_ratio_nothing_meets_bounds_by_the_argmax_which_competes_and_its_row_is_ours_n1_again(tmp_path):
    """A latency ratio no network meets: the bound is the argmax's own table latency, so the argmax is trained as
    candidate 0 and only candidates no slower than it compete; the picked row, trained with ours n=1's seed, scores
    exactly what ours n=1 scores when the argmax wins."""
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    cfg = replace(preset("smoke").with_pick(PickConfig(candidates=3, train_steps=1)), pick_latency_ratio=1e-9)
    results = MsnasHwExperiment(cfg, tmp_path / "run", progress=lambda m: None).run_rows(["ours_n1", "ours_n1_pick"])
    doc = json.loads((tmp_path / "run" / "pick.json").read_text())
    argmax = doc["candidates"][0]
    assert doc["bound_ms"] == argmax["lut_ms"] == doc["argmax_lut_ms"] > 1e-9 * doc["msnas_n4_lut_ms"]
    assert "the argmax's own" in doc["rule"]
    assert argmax["within_bound"] and "val_dice" in argmax and (tmp_path / "run" / "rows" / "pick_c0").is_dir()
    for c in doc["candidates"][1:]:
        assert c["within_bound"] == (c["lut_ms"] <= argmax["lut_ms"])
        assert ("val_dice" in c) == (c["within_bound"] or "same_network_as" in c)
    picked = doc["candidates"][doc["picked"]]
    assert picked["within_bound"] and results["ours_n1_pick"]["genotype"] == picked["genotype"]
    if doc["picked"] == 0:
        assert results["ours_n1_pick"]["genotype"] == results["ours_n1"]["genotype"]
        assert results["ours_n1_pick"]["dice"]["mean"] == results["ours_n1"]["dice"]["mean"]
        assert results["ours_n1_pick"]["train_losses"] == results["ours_n1"]["train_losses"]


def test_an_argmax_pick_copies_ours_n1_instead_of_retraining_it(tmp_path, monkeypatch):
    """When the pick keeps the argmax, the picked row is ours n=1's network with ours n=1's seed: its weights and
    result are copied (``same_as``), not trained a second time."""
    from search.methods.msnas_hw import experiment
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    trained = []
    original = MsnasHwExperiment.train_row

    def recording(self, row, genotype, **kw):
        if not (self.out / "rows" / row.key / "result.json").is_file():
            trained.append(row.key)
        return original(self, row, genotype, **kw)

    monkeypatch.setattr(MsnasHwExperiment, "train_row", recording)
    monkeypatch.setattr(experiment, "ranked_candidates", lambda out: [out[0]])  # the argmax wins
    cfg = replace(preset("smoke").with_pick(PickConfig(candidates=2, train_steps=1)), pick_latency_ratio=100.0)
    out = tmp_path / "run"
    results = MsnasHwExperiment(cfg, out, progress=lambda m: None).run_rows(["ours_n1", "ours_n1_pick"])
    assert json.loads((out / "pick.json").read_text())["picked"] == 0
    assert "ours_n1" in trained and "ours_n1_pick" not in trained
    picked, ours = results["ours_n1_pick"], results["ours_n1"]
    assert picked["same_as"] == "ours_n1" and picked["key"] == "ours_n1_pick" and picked["genotype"] == ours["genotype"]
    assert picked["dice"] == ours["dice"]
    rows = out / "rows"
    assert (rows / "ours_n1_pick" / "weights.pt").read_bytes() == (rows / "ours_n1" / "weights.pt").read_bytes()
    assert json.loads((rows / "ours_n1_pick" / "result.json").read_text()) == picked
    again = MsnasHwExperiment(cfg, out, progress=lambda m: None).run_rows(["ours_n1", "ours_n1_pick"])
    assert again["ours_n1_pick"] == picked  # read back


def test_picks_never_score_on_the_test_patients():
    from search.train.clips import PatientSplit

    plain = PatientSplit(test=("t1",), val=(), weight=("w1", "w2"), arch=("a1",))
    assert plain.pick_patients() == (("w1", "w2"), ("a1",), "architecture")
    with_val = PatientSplit(test=("t1",), val=("v1",), weight=("w2", "w1"), arch=("a1",))
    assert with_val.pick_patients() == (("a1", "w1", "w2"), ("v1",), "validation")
    for split in (plain, with_val):
        trained, scored, _ = split.pick_patients()
        assert not set(trained + scored) & set(split.test)


def test_the_bound_is_the_ratio_or_the_argmax_own_latency_when_the_argmax_misses_it(tmp_path, monkeypatch):
    """The bound: 0.3x MS-NAS n=4's table latency, or the argmax's own when the search's argmax is slower than
    that, so the argmax always competes and the pick is never slower than it."""
    from search.methods.msnas_hw import space
    from search.methods.msnas_hw.experiment import BOUND_RULE, MsnasHwExperiment

    cfg = preset("smoke").with_pick(PickConfig(candidates=2))
    ref = next(r for r in cfg.rows if r.kind == "msnas" and not r.latency_aware)
    exp = MsnasHwExperiment(cfg, tmp_path, progress=lambda m: None)
    for argmax_ms, bound in ((10.0, 30.0), (45.0, 45.0)):
        monkeypatch.setattr(space, "decoded_latency", lambda c, g, t, a=argmax_ms: 100.0 if g == "n4" else a)
        assert exp._pick_bound("argmax", {ref.search: {ref.n_paths: "n4"}}, None) == (100.0, argmax_ms, bound)
    assert "argmax" in BOUND_RULE


def test_the_candidate_plan_of_each_paths_setting_shared_by_both_picks():
    cells = ["argmax", "b", "c"]
    top = [("argmax", "argmax", False), ("sampled", "b", False), ("sampled", "c", False)]
    assert PickConfig(candidates=3).plan(cells) == top
    assert PickConfig(candidates=3, paths="sampled").plan(cells) == [top[0], ("sampled", "b", True), ("sampled", "c", True)]
    assert PickConfig(candidates=3, paths="both").plan(cells) == top + [("sampled", "b", True), ("sampled", "c", True)]
    assert PickConfig(candidates=3, paths="both").plan(["argmax"]) == [top[0]]  # a converged search: one cell set
