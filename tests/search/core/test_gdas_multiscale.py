"""GDAS in the cine searches (issue 16): one (input, op) pair per cell node, softmax grid, the bilevel loop's sampler."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from search.core.cells import Cell, CellArch
from search.core.mixed import ArchWeighting, MixedOp, TauSchedule
from search.core.ops import MSNAS_OPS as MULTISCALE_OPS
from search.core.supernets.multiscale import MULTISCALE_SPEC, MultiscaleConfig, MultiscaleSupernet
from tests.search.core.test_gdas_single_path import _count_calls


def _gdas(seed: int = 0, tau: float = 1.0) -> ArchWeighting:
    return ArchWeighting.gdas(torch.Generator().manual_seed(seed), tau)


@pytest.mark.parametrize("relaxation", ["input_op_pair", "edge_op"])
def test_a_single_path_cell_runs_one_pair_per_node_and_equals_that_pair(relaxation):
    torch.manual_seed(0)
    spec = MULTISCALE_SPEC
    arch = CellArch(spec, relaxation, torch.Generator().manual_seed(1))
    cell = Cell(spec, 3, [4], 4, pc_k=1)
    calls = _count_calls(cell)
    x = torch.randn(1, 4, 2, 8, 8)
    weights = arch.edge_weights(_gdas(3))
    out = cell([x], weights, single_path=True)
    assert sum(calls.values()) == spec.n_nodes  # one candidate op of one edge per node
    # the same value by hand: each node is its drawn edge's drawn op on that edge's source state
    with torch.no_grad():
        states = [x]
        for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
            (e,) = [e for e in spec.incoming(dst) if weights[e].any()]
            k = int(weights[e].argmax())
            states.append(cell.edges[e].ops[k](states[spec.edges[e][0]]))
        expected = cell.fuse(torch.cat(states[1:], dim=1))  # the msnas cell concatenates its nodes
    assert torch.allclose(out, expected, atol=1e-6)
    out.pow(2).mean().backward()
    grads = [p.grad for p in arch.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_a_gdas_multiscale_supernet_samples_the_cells_and_keeps_the_grid_soft():
    torch.manual_seed(0)
    net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=3, n_scales=3, relaxation="input_op_pair",
                                              pc_k=2), seed=0)
    calls = _count_calls(net)
    x = torch.randn(1, 1, 2, 16, 16)
    out = net(x, _gdas(5))
    n_cells = len(net.cells)
    assert sum(calls.values()) == n_cells * net.config.n_nodes
    out.pow(2).mean().backward()
    assert net.beta.grad is not None and net.beta.grad[net.beta_mask].abs().sum() > 0  # the grid's exact gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.cell_arch.parameters())
    for key in calls:
        calls[key] = 0
    net(x)  # the default weighting: every candidate of every edge
    assert sum(calls.values()) == sum(len(m.ops) for m in net.modules() if isinstance(m, MixedOp))


def test_the_sampler_is_validated_and_left_out_of_old_configs():
    from search.methods.msnas_hw.config import preset as msnas_preset
    from search.methods.rtdnas.config import RtSearchConfig, preset
    from search.train.cine_config import SearchConfig

    old_fields = {"warmup_steps", "search_steps", "batch_size", "weight_lr", "weight_decay", "arch_lr", "arch_betas",
                  "arch_weight_decay", "proxy_clip"}  # run folders and config hashes from before the options stand
    assert set(preset("default").to_dict()["search"]) == old_fields | {
        "weight_lr_min", "momentum", "latency_ub_ms", "penalty_lambda", "penalty_tau_ms"}
    assert set(msnas_preset("default").to_dict()["search"]) == old_fields | {"latency_lambda", "gumbel_tau"}
    from dataclasses import replace

    gdas = replace(preset("default"), search=replace(preset("default").search, sampler="gdas"))
    assert gdas.to_dict()["search"]["sampler"] == "gdas" and tuple(gdas.to_dict()["search"]["gdas_tau"]) == (10.0, 0.1)
    for cls in (SearchConfig, RtSearchConfig):
        with pytest.raises(ValueError, match="sampler must be one of"):
            cls(sampler="spos")
        with pytest.raises(ValueError, match="gdas_tau"):
            cls(sampler="gdas", gdas_tau=(1.0, 0.0))


def test_an_rtdnas_gdas_search_anneals_tau_runs_single_path_and_moves_the_alphas():
    from torch.utils.data import DataLoader, TensorDataset

    from search.methods.rtdnas.config import RtSearchConfig
    from search.methods.rtdnas.search import RtdnasSearch

    torch.manual_seed(0)
    net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=2, n_scales=2, relaxation="input_op_pair",
                                              pc_k=2), seed=0)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(4, 1, 2, 8, 8, generator=g), torch.randint(0, 4, (4, 2, 8, 8), generator=g))

    def loader(seed):
        return DataLoader(data, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(seed))

    cfg = RtSearchConfig(warmup_steps=2, search_steps=3, batch_size=2, arch_lr=0.05, sampler="gdas",
                         gdas_tau=(4.0, 1.0))
    latency = lambda: sum(p.sum() * 0 for p in net.arch_parameters()) + torch.tensor(3.0)  # noqa: E731
    search = RtdnasSearch(net, latency, loader(0), loader(1), cfg, ub_ms=5.0, generator=torch.Generator().manual_seed(2))
    assert search.weighting().single_path and search.weighting().tau == 4.0  # warm-up: the first temperature
    calls = _count_calls(net)
    alphas = [p.detach().clone() for p in net.cell_arch.parameters()]
    taus = []
    real = search.weighting

    def spy():
        w = real()
        taus.append((search.step, w.tau))
        return w

    search.weighting = spy
    history = search.run()
    assert [r.phase for r in history] == ["warmup"] * 2 + ["search"] * 3
    assert all(math.isfinite(r.weight_ce) for r in history)
    # weight steps of the warm-up at tau 4, then each search step's weight and arch step at its annealed tau
    assert sorted(set(taus)) == [(1, 4.0), (2, 4.0), (3, 4.0), (4, 2.5), (5, 1.0)]
    n_forwards = 2 + 3 * 2
    assert sum(calls.values()) == n_forwards * len(net.cells) * net.config.n_nodes
    assert any(not torch.equal(a, p.detach()) for a, p in zip(alphas, net.cell_arch.parameters()))
    assert TauSchedule(4.0, 1.0).at(1, 3) == 2.5


def test_free_op_dropout_drops_only_the_weight_free_candidates_in_training_mode():
    from search.core.mixed import set_free_op_dropout
    from search.core.ops import OP_SETS

    torch.manual_seed(0)
    names = OP_SETS["msnas"]
    op = MixedOp(names, 3, 4, 4)
    x = torch.randn(2, 4, 2, 8, 8)
    set_free_op_dropout(op, 0.5)
    for k, name in enumerate(names):
        one_hot = torch.zeros(len(names))
        one_hot[k] = 1.0
        op.train()
        trained = op(x, one_hot, single_path=True)
        op.eval()
        plain = op(x, one_hot, single_path=True)
        if name in ("identity", "max_pool"):
            zeroed = (trained == 0) & (plain != 0)
            assert 0.3 < zeroed.float().mean() < 0.7  # about half dropped ...
            kept = trained != 0
            assert torch.allclose(trained[kept], 2 * plain[kept], atol=1e-5)  # ... the rest scaled by 1 / (1 - p)
        elif name != "zero":
            assert not ((trained == 0) & (plain != 0)).float().mean() > 0.3  # convolutions untouched by it
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        set_free_op_dropout(op, 1.0)


def test_a_search_with_free_op_dropout_sets_it_on_every_mixed_op_and_records_it():
    from torch.utils.data import DataLoader, TensorDataset

    from search.methods.rtdnas.config import RtSearchConfig, preset
    from search.methods.rtdnas.search import RtdnasSearch
    from search.train.cine_config import SearchConfig

    net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=2, n_scales=2, relaxation="input_op_pair",
                                              pc_k=2), seed=0)
    data = TensorDataset(torch.randn(2, 1, 2, 8, 8), torch.randint(0, 4, (2, 2, 8, 8)))
    loader = DataLoader(data, batch_size=2)
    RtdnasSearch(net, lambda: torch.tensor(1.0), loader, loader, RtSearchConfig(free_op_dropout=0.2), ub_ms=5.0,
                 generator=torch.Generator().manual_seed(0))
    assert {m.free_op_dropout for m in net.modules() if isinstance(m, MixedOp)} == {0.2}
    from dataclasses import replace

    cfg = preset("default")
    assert "free_op_dropout" not in cfg.to_dict()["search"]
    assert replace(cfg, search=replace(cfg.search, free_op_dropout=0.2)).to_dict()["search"]["free_op_dropout"] == 0.2
    with pytest.raises(ValueError, match="free_op_dropout"):
        SearchConfig(free_op_dropout=1.5)


def test_a_gdas_draw_never_picks_zero():
    net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=2, n_scales=2, relaxation="input_op_pair"), seed=0)
    with torch.no_grad():
        for arch in net.cell_arch.values():  # make zero the most likely candidate of every edge
            for name, p in arch.named_parameters():
                if name.startswith("alpha_"):
                    p[:, MULTISCALE_OPS.index("zero")] = 10.0
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        for arch in net.cell_arch.values():
            for w in arch.edge_weights(ArchWeighting.gdas(gen, 1.0), frozenset({"zero"})):
                assert float(w.detach()[MULTISCALE_OPS.index("zero")]) == 0.0
    calls = _count_calls(net)
    net(torch.randn(1, 1, 2, 8, 8), ArchWeighting.gdas(gen, 1.0))
    zero_ops = {id(m.ops[m.op_names.index("zero")]) for m in net.modules() if isinstance(m, MixedOp)}
    assert sum(calls[i] for i in zero_ops) == 0 and sum(calls.values()) > 0


def test_a_resumed_gdas_search_continues_its_step_temperature_and_draws(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from search.methods.rtdnas.config import RtSearchConfig
    from search.methods.rtdnas.search import RtdnasSearch

    def make():
        torch.manual_seed(0)
        net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=2, n_scales=2,
                                                  relaxation="input_op_pair", pc_k=2), seed=0)
        data = TensorDataset(torch.randn(2, 1, 2, 8, 8), torch.randint(0, 4, (2, 2, 8, 8)))
        cfg = RtSearchConfig(warmup_steps=1, search_steps=4, batch_size=2, sampler="gdas", gdas_tau=(4.0, 1.0),
                             free_op_dropout=0.3)
        return RtdnasSearch(net, lambda: torch.tensor(1.0), DataLoader(data, batch_size=2), DataLoader(data, batch_size=2),
                            cfg, ub_ms=5.0, generator=torch.Generator().manual_seed(1),
                            checkpoint=tmp_path / "ck.pt", checkpoint_every=1)

    first = make()
    first.cfg = first.cfg.__class__(**{**first.cfg.__dict__, "search_steps": 2})  # stop after step 3 of 5
    first.run()
    saved_gen, saved_rng = first.generator.get_state(), torch.get_rng_state()
    torch.manual_seed(123)  # a fresh process would not share the global RNG
    second = make()
    assert second.resume() and second.step == 3
    assert torch.equal(second.generator.get_state(), saved_gen) and torch.equal(torch.get_rng_state(), saved_rng)
    second.step += 1
    assert second.weighting().tau == pytest.approx(TauSchedule(4.0, 1.0).at(2, 4))  # step 4 = arch step 2 of 4


def test_skip_edge_dropout_drops_every_grid_skip_in_training_mode_only(monkeypatch):
    from search.core.supernets import multiscale
    from search.core.supernets.multiscale import grid_edges

    net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=3, n_scales=2, relaxation="input_op_pair"), seed=0)
    calls = []
    real = nn.functional.dropout

    def counted(x, p=0.5, training=True, inplace=False):
        calls.append(p)
        return real(x, p, training, inplace)

    monkeypatch.setattr(multiscale.nn.functional, "dropout", counted)
    x = torch.randn(1, 1, 2, 8, 8)
    net(x)
    assert calls == []  # off by default
    net.skip_edge_dropout = 0.4
    net(x)
    reached = sum(1 for layer, s, kind in grid_edges(3, 2) if kind == "skip" and s <= layer)
    assert calls == [0.4] * reached
    calls.clear()
    net.eval()
    net(x)
    assert calls == []


def test_a_search_sets_skip_edge_dropout_and_refuses_a_supernet_without_skips():
    from torch.utils.data import DataLoader, TensorDataset

    from search.methods.rtdnas.config import RtSearchConfig
    from search.methods.rtdnas.search import RtdnasSearch
    from tests.search.tiny_supernet import TinySupernet

    net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=2, n_scales=2, relaxation="input_op_pair"), seed=0)
    loader = DataLoader(TensorDataset(torch.randn(2, 1, 2, 8, 8), torch.randint(0, 4, (2, 2, 8, 8))), batch_size=2)
    cfg = RtSearchConfig(skip_edge_dropout=0.3)
    RtdnasSearch(net, lambda: torch.tensor(1.0), loader, loader, cfg, ub_ms=5.0, generator=torch.Generator())
    assert net.skip_edge_dropout == 0.3
    tiny = TinySupernet()
    with pytest.raises(ValueError, match="no skip edges"):
        RtdnasSearch(tiny, tiny.latency, loader, loader, cfg, ub_ms=5.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="skip_edge_dropout"):
        RtSearchConfig(skip_edge_dropout=-0.1)
