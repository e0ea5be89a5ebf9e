"""rtdnas: presets, loss, GA (determinism, canonical individuals, never worse than top-weight), fused
latency model, and the smoke preset end to end."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from search.core.estimators import predict_latency
from search.core.latency_sites import collect_latency_keys
from search.core.sampling import sample_random_genotype
from search.latency.lut import LatencyTable
from search.methods.rtdnas import space
from search.methods.rtdnas.config import preset
from search.methods.rtdnas.ga import GaConfig, GenePool, GeneticPathSelection, canonical, exhaustive_best
from search.methods.rtdnas.search import rtdnas_loss


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_presets_are_consistent(name):
    cfg = preset(name)
    assert cfg.supernet.pc_k == 4 and cfg.supernet.nodes == 3
    assert cfg.search.latency_ub_ms == 50.0 and cfg.measure.realtime_fps == 22.0
    assert (cfg.search.momentum, cfg.search.weight_lr, cfg.search.weight_lr_min, cfg.search.weight_decay) == (
        0.9, 0.01, 0.001, 3e-4)
    json.dumps(cfg.to_dict())


def test_default_and_paper_keep_the_papers_space_and_ga():
    for name in ("default", "paper"):
        cfg = preset(name)
        assert (cfg.supernet.layers, cfg.supernet.scales) == (10, 4)
        assert (cfg.ga.pool_size, cfg.ga.population, cfg.ga.generations) == (10, 20, 100)
        assert cfg.table1_paths == (3, 5, 7)
        assert cfg.cloud.n_archs >= 30
    assert preset("paper").sweep_paths == (6, 7, 8)
    with pytest.raises(ValueError):
        preset("nope")


def test_the_free_op_cap_is_recorded_only_when_set_and_reaches_the_decoded_cells():
    from dataclasses import replace

    from search.core.ops import PARAMETER_FREE_OPS

    cfg = preset("smoke")
    assert "cell_max_free_ops" not in cfg.to_dict()  # run folders and hashes made before the cap are unchanged
    capped = replace(cfg, cell_max_free_ops=0)
    assert capped.to_dict()["cell_max_free_ops"] == 0
    with pytest.raises(ValueError, match="cell_max_free_ops"):
        replace(cfg, cell_max_free_ops=-1)
    net = space.build_supernet(cfg, seed=0)
    with torch.no_grad():  # every node's strongest pair: a weight-free op
        for arch in net.cell_arch.values():
            for e in range(len(arch.spec.edges)):
                names = arch.spec.edge_ops(e)
                arch.alpha(e).zero_()
                arch.alpha(e)[names.index("identity")] = 5.0
    plain = space.decode_cells(net)
    assert all(edge.op == "identity" for c in plain.values() for edge in c.edges)
    for cap in (0, 1):
        cells = space.decode_cells(net, cap)
        assert all(sum(edge.op in PARAMETER_FREE_OPS for edge in c.edges) == cap for c in cells.values())
        assert all([(e.src, e.dst) for e in c.edges] == [(e.src, e.dst) for e in plain[k].edges] for k, c in cells.items())


# -------------------------------------------------------------------------------------------- loss
def test_loss_scales_latency_by_the_bound_and_penalises_exponentially():
    ce = torch.tensor(0.8)
    at_bound = rtdnas_loss(ce, torch.tensor(50.0), 50.0, 1.0, 5.0)
    assert float(at_bound) == pytest.approx(0.8 * 1.0 + 1.0)
    below = rtdnas_loss(ce, torch.tensor(25.0), 50.0, 1.0, 5.0)
    assert float(below) == pytest.approx(0.8 * 0.5 + math.exp(-5.0))
    lat = torch.tensor(60.0, requires_grad=True)
    rtdnas_loss(ce, lat, 50.0, 1.0, 5.0).backward()
    assert float(lat.grad) == pytest.approx(0.8 / 50.0 + math.exp(2.0) / 5.0)  # over budget: the penalty dominates
    huge = rtdnas_loss(ce, torch.tensor(1e6), 50.0, 1.0, 1.0)
    assert math.isfinite(float(huge))
    with pytest.raises(ValueError):
        rtdnas_loss(ce, torch.tensor(1.0), 0.0, 1.0, 1.0)


def test_the_penalty_form_charges_latency_only_near_the_bound():
    ce = torch.tensor(0.8)
    assert float(rtdnas_loss(ce, torch.tensor(25.0), 50.0, 1.0, 5.0, "penalty")) == pytest.approx(0.8 + math.exp(-5.0))
    penalty, product = torch.tensor(10.0, requires_grad=True), torch.tensor(10.0, requires_grad=True)
    rtdnas_loss(ce, penalty, 50.0, 1.0, 5.0, "penalty").backward()
    rtdnas_loss(ce, product, 50.0, 1.0, 5.0).backward()
    assert float(penalty.grad) == pytest.approx(math.exp(-8.0) / 5.0)  # ~0 far below the bound
    assert float(product.grad) > 100 * float(penalty.grad)  # the product keeps pushing latency down at any latency
    with pytest.raises(ValueError, match="latency loss"):
        rtdnas_loss(ce, torch.tensor(1.0), 50.0, 1.0, 1.0, "sum")


def test_the_latency_loss_option_is_left_out_of_paper_configs():
    from dataclasses import replace

    from search.methods.rtdnas.config import RtSearchConfig, preset

    cfg = preset("default")
    assert "latency_loss" not in cfg.to_dict()["search"]
    assert replace(cfg, search=replace(cfg.search, latency_loss="penalty")).to_dict()["search"]["latency_loss"] == "penalty"
    with pytest.raises(ValueError, match="latency_loss"):
        RtSearchConfig(latency_loss="sum")


# --------------------------------------------------------------------------- synthetic GA problems
def _synthetic_problem(seed: int, pool_size: int = 10):
    """Random cells and beta on the default grid (10 x 4), and a random lookup table for their keys."""
    cfg = preset("smoke")
    cfg = space.with_layers(cfg, 10)
    from dataclasses import replace

    cfg = replace(cfg, supernet=replace(cfg.supernet, scales=4))
    rng = np.random.default_rng(seed)
    g = sample_random_genotype("rtdnas", rng, n_layers=10, n_scales=4, n_paths=1)
    beta = rng.dirichlet(np.ones(4), size=(10, 4))
    beta[:, 0, 0] = 0.0  # no ep from scale 0
    beta[:, 3, 2] = 0.0  # no ct from the coarsest scale
    beta /= beta.sum(-1, keepdims=True)
    pool = GenePool.from_beta(beta, pool_size)
    net = space.build_derived(cfg, space.genotype(cfg, g.cells, pool.paths))
    shape = (1, 4, 32, 32)
    table = LatencyTable()
    for key in sorted(collect_latency_keys(net, shape)):
        table.set(key, float(rng.uniform(0.1, 5.0)))
    fused = space.FusedLatencyModel(cfg, g.cells, pool.paths, table, input_shape=shape)
    return cfg, g.cells, pool, table, fused, shape


@pytest.fixture(scope="module")
def problem():
    return _synthetic_problem(3)


def test_fused_latency_model_equals_predict_latency(problem):
    cfg, cells, pool, table, fused, shape = problem
    rng = np.random.default_rng(0)
    for _ in range(4):
        n = int(rng.integers(1, 6))
        idx = canonical(rng.choice(len(pool), size=n, replace=False))
        paths = pool.genes(idx)
        net = space.build_derived(cfg, space.genotype(cfg, cells, paths))
        assert fused(paths) == pytest.approx(predict_latency(net, shape, table), rel=1e-9)


def test_canonical_individuals_have_no_duplicates(problem):
    _, _, pool, _, fused, _ = problem
    with pytest.raises(ValueError):
        canonical([3, 1, 3])
    assert canonical([7, 2, 5]) == (2, 5, 7)
    ga = GeneticPathSelection(pool, 5, fused, GaConfig(), seed=1)
    seen = ga.initial_population()
    for _ in range(300):
        a, b = seen[int(ga.rng.integers(len(seen)))], seen[int(ga.rng.integers(len(seen)))]
        seen += [ga.crossover(a, b), ga.mutate(a)]
    for ind in seen:
        assert len(ind) == 5 and len(set(ind)) == 5 and list(ind) == sorted(ind)
        assert all(0 <= g < len(pool) for g in ind)
    assert tuple(range(5)) in ga.initial_population()  # top-weight individual is always in generation 0


def test_pool_is_sorted_by_accumulated_weight(problem):
    _, _, pool, _, _, _ = problem
    assert len(pool) == 10 and len(set(pool.paths)) == 10
    assert list(pool.log_weights) == sorted(pool.log_weights, reverse=True)


def test_ga_is_deterministic(problem):
    _, _, pool, _, fused, _ = problem
    runs = [GeneticPathSelection(pool, 5, fused, GaConfig(generations=30), seed=7).run() for _ in range(2)]
    assert runs[0].to_dict() == runs[1].to_dict()
    assert len(runs[0].history) == 31


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [3, 5, 7])
def test_ga_never_worse_than_top_weight(seed, n):
    _, _, pool, _, fused, _ = _synthetic_problem(seed) if seed else _synthetic_problem(3)
    res = GeneticPathSelection(pool, n, fused, GaConfig(), seed=seed).run()
    assert res.latency_ms <= res.top_weight_latency_ms + 1e-12
    assert res.top_weight_latency_ms == pytest.approx(fused(pool.paths[:n]))
    assert res.latency_ms == pytest.approx(fused(res.paths))
    assert all(b <= a + 1e-12 for a, b in zip(res.history, res.history[1:]))  # elitism: never gets worse
    _, optimum = exhaustive_best(pool, n, fused)
    assert res.latency_ms >= optimum - 1e-12
    assert res.evaluated <= math.comb(len(pool), n)


def test_ga_finds_the_optimum_of_a_separable_fitness():
    """Fitness = sum of per-gene costs: the optimum is the n cheapest genes; 100 generations find it."""
    from search.core.genotypes import PathGenotype

    paths = tuple(PathGenotype(k) for k in itertools.islice(itertools.product(("ns", "skip"), repeat=4), 10))
    pool = GenePool(paths, tuple(-0.1 * i for i in range(10)))
    cost = {p: c for p, c in zip(paths, [9, 8, 7, 1, 6, 2, 5, 3, 4, 10])}
    res = GeneticPathSelection(pool, 4, lambda ps: float(sum(cost[p] for p in ps)), GaConfig(), seed=0).run()
    assert res.best == (3, 5, 7, 8) and res.latency_ms == 10.0
    assert res.top_weight_latency_ms == 25.0


def test_ga_rejects_bad_sizes(problem):
    _, _, pool, _, fused, _ = problem
    with pytest.raises(ValueError):
        GeneticPathSelection(pool, 11, fused, GaConfig(), seed=0)
    with pytest.raises(ValueError):
        GaConfig(population=4, elite=4)


# ------------------------------------------------------------------------------ constraint rounds
def test_a_missed_budget_lowers_l_ub_and_searches_again(tmp_path):
    from search.methods.rtdnas.experiment import RtdnasExperiment, next_ub

    cfg = preset("smoke")
    slow = {"p50_ms": 60.0, "p95_ms": 100.0, "fps": 11.0}  # p95 2x over 50 ms and 2x under 22 FPS
    assert next_ub(cfg, 50.0, 40.0, slow) == pytest.approx(40.0 * 0.5 * cfg.rounds.shrink_margin)
    tail = {"p50_ms": 30.0, "p95_ms": 80.0, "fps": 30.0}  # median fine, tail too slow: p95 decides
    assert next_ub(cfg, 50.0, 40.0, tail) == pytest.approx(40.0 * (50.0 / 80.0) * cfg.rounds.shrink_margin)
    assert next_ub(cfg, 50.0, 40.0, {"p50_ms": 1e6, "fps": 1e-3}) == cfg.rounds.min_ub_ms
    exp = RtdnasExperiment(cfg, tmp_path)
    bounds = []

    def fake_round(k, ub, table):
        bounds.append(ub)
        measured = slow if k == 1 else {"p50_ms": 20.0, "fps": 50.0}
        return {"round": k, "check": {"lut_ms": 40.0, "measured": measured,
                                      "meets": measured["p50_ms"] <= 50.0 and measured["fps"] >= 22.0}}

    exp.search_round = fake_round
    final = exp.search_rounds(None)
    assert final["round"] == 2 and bounds == [50.0, pytest.approx(40.0 * 0.5 * cfg.rounds.shrink_margin)]


# ---------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    from search.methods.rtdnas.experiment import RtdnasExperiment

    out = tmp_path / "run"
    exp = RtdnasExperiment(preset("smoke"), out, models_dir=tmp_path / "models")
    results = exp.run()
    rows = results["rows"]
    assert {"tw_n2", "ga_n2", "tw_n3", "ga_n3", "ga_n1"} <= set(rows)
    full = [k for k in results["cloud"] if k.endswith("_full")]
    assert len(results["cloud"]) - len(full) == 3 and len(full) <= 1
    for k in full:  # a budget-meeting cloud network, retrained with the rows' schedule
        assert results["cloud"][k]["meets"] and results["cloud"][k]["genotype"] == results["cloud"][k[:-5]]["genotype"]
    for _k, r in [*rows.items(), *results["cloud"].items()]:
        assert r["latency"]["p50_ms"] > 0
        # the smoke cloud is latency-only (untrained, no Dice); every trained network has a Dice
        assert math.isnan(r["dice"]["mean"]) if r.get("untrained") else 0.0 <= r["dice"]["mean"] <= 1.0
    assert sum(bool(r.get("untrained")) for r in results["cloud"].values()) == 3
    derivation = json.loads((out / "derivation.json").read_text())
    for d in derivation["by_n"].values():
        assert d["latency_ms"] <= d["top_weight_latency_ms"] + 1e-12
        assert d["exhaustive_ms"] <= d["latency_ms"] + 1e-12
    rounds = exp.rounds_summary()
    assert 1 <= len(rounds) <= 2 and rounds[0]["ub_ms"] == 50.0
    report = (out / "report" / "report.md").read_text()
    assert "Table 1" in report and "Table 2" in report and (out / "report" / "fig2.png").stat().st_size > 0
    first = json.loads((out / "rounds" / "r1" / "result.json").read_text())  # issue 16: trace and verdict
    assert isinstance(first["convergence"]["converged"], bool) and first["arch_trace"]["steps"][0] == 0
    assert "## Did the searches converge?" in report
    numbers = json.loads((out / "report" / "results.json").read_text())
    assert set(numbers["rows"]) == set(rows) and set(numbers["cloud"]) == set(results["cloud"])
    assert numbers["rows"]["ga_n2"]["dice"]["mean"] == rows["ga_n2"]["dice"]["mean"]
    shipping = json.loads((out / "shipping.json").read_text())
    assert shipping["shipped"] == any(r.get("meets") for r in rows.values())
    if shipping["shipped"]:
        card = json.loads(Path(shipping["model"]).with_suffix(".json").read_text())
        assert card["method"] == "rtdnas" and card["default"] is True and card["meets_realtime"] is True
        assert isinstance(card["search"]["convergence"]["converged"], bool)
    # every stage went through the stage harness and is recorded in stages.json (issue 15)
    always = {"report:rows", "ship:rows", "report", "ship"}  # declare no result files: they always run
    trained = {k for k, r in {**rows, **results["cloud"]}.items() if "same_network_as" not in r}
    done = {"latency-table", "derivation", "latency:rows", "latency:cloud", *(f"row:{k}" for k in trained),
            *(f"search:round{r['round']}" for r in rounds), *(["latency:cloud_full"] if full else [])}
    record = json.loads((out / "stages.json").read_text())["stages"]
    assert set(record) == done | always
    assert all(record[name]["status"] == "ran" for name in record), {n: r["reason"] for n, r in record.items()}
    assert record["search:round1"]["outputs"] == ["rounds/r1/result.json"]
    # resumable: a second run redoes nothing but the report
    again = RtdnasExperiment(preset("smoke"), out).run()
    assert again["rows"]["ga_n2"]["dice"] == rows["ga_n2"]["dice"]
    assert again["rows"]["ga_n2"]["latency"] == rows["ga_n2"]["latency"]
    record = json.loads((out / "stages.json").read_text())["stages"]
    for name in done:
        assert record[name]["status"] == "skipped", (name, record[name]["reason"])
        assert record[name]["reason"].endswith("config hash unchanged"), (name, record[name]["reason"])
    assert record["report"]["status"] == "ran" and record["report"]["reason"].startswith("ran: always runs")


def test_without_the_cloud_the_rows_report_and_model_stand_and_a_later_run_adds_the_cloud(tmp_path):
    import json

    from search.methods.rtdnas.config import preset
    from search.methods.rtdnas.experiment import RtdnasExperiment

    out, models = tmp_path / "run", tmp_path / "models"
    said = []
    results = RtdnasExperiment(preset("smoke"), out, models_dir=models, progress=said.append, cloud=False).run()
    assert results["rows"] and results["cloud"] == {}
    assert any(line.startswith("cloud: left out (--no-cloud)") for line in said)
    report = (out / "report" / "report.md").read_text()
    assert "left out of this run" in report and "this run left the cloud out" in report
    record = json.loads((out / "stages.json").read_text())["stages"]
    assert "report:rows" in record and "ship:rows" in record
    assert not any("cloud" in k or k == "report" for k in record)
    shipped = sorted(p.name for p in models.glob("*.json"))
    assert shipped  # the rows' model ships without the cloud
    again = RtdnasExperiment(preset("smoke"), out, models_dir=models).run()  # the cloud on top, rows not retrained
    assert again["cloud"] and again["rows"].keys() == results["rows"].keys()
    record = json.loads((out / "stages.json").read_text())["stages"]
    assert record["report"]["status"] == "ran"
    assert "left out of this run" not in (out / "report" / "report.md").read_text()
    rows = [k for k in record if k.startswith("row:") and "cloud" not in k]
    assert rows and all(record[k]["status"] == "skipped" for k in rows)
    assert any("cloud" in k and record[k]["status"] == "ran" for k in record)
    assert sorted(p.name for p in models.glob("*.json")) == shipped
