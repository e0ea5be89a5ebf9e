"""GDAS single-path sampling (issue 16): one candidate runs per edge, the logits still learn, tau anneals."""

import pytest
import torch
from torch import nn

from search.core.cells import Cell, CellArch, CellSpec
from search.core.mixed import ArchWeighting, MixedOp, TauSchedule, sampled_index
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
from search.core.supernets.qcnet import QcNetConfig, QcSupernet

NORMAL = CellSpec(1, ("segqc_normal",), "segqc_normal", n_nodes=3)


def _count_calls(module: nn.Module) -> dict[int, int]:
    """Forward calls of every candidate op of every MixedOp under ``module``, keyed by ``id(op)``."""
    calls: dict[int, int] = {}

    def hook(mod, args):
        calls[id(mod)] += 1

    for mixed in (m for m in module.modules() if isinstance(m, MixedOp)):
        for op in mixed.ops:
            calls[id(op)] = 0
            op.register_forward_pre_hook(hook)
    return calls


def _gdas(seed: int = 0, tau: float = 1.0) -> ArchWeighting:
    return ArchWeighting.gdas(torch.Generator().manual_seed(seed), tau)


def test_gdas_weights_are_one_hot_in_value_and_straight_through():
    logits = nn.Parameter(torch.tensor([0.3, -0.2, 0.1, 0.0, 0.5]))
    w = _gdas(3, tau=2.0)(logits)
    assert torch.count_nonzero(w.detach()) == 1 and float(w.detach().max()) == pytest.approx(1.0)
    k = sampled_index(w)
    w[k].backward()
    assert logits.grad is not None and torch.all(logits.grad != 0), "every logit of the edge gets a gradient"
    with pytest.raises(ValueError, match="one-hot"):
        sampled_index(torch.softmax(logits.detach(), 0))
    with pytest.raises(ValueError, match="hard Gumbel"):
        ArchWeighting("softmax", single_path=True)


def test_gdas_mixed_op_runs_exactly_the_sampled_candidate_and_equals_its_output():
    torch.manual_seed(0)
    mixed = MixedOp(("conv", "dil_conv", "sep_conv", "identity", "zero"), 2, 4, 4)
    calls = _count_calls(mixed)
    x = torch.randn(2, 4, 8, 8)
    logits = nn.Parameter(torch.zeros(5))
    weighting = _gdas(1)
    chosen = set()
    for _ in range(12):
        for key in calls:
            calls[key] = 0
        w = weighting(logits)
        k = sampled_index(w)
        chosen.add(k)
        y = mixed(x, w, single_path=True)
        assert [calls[id(op)] for op in mixed.ops] == [int(i == k) for i in range(5)]
        torch.testing.assert_close(y, mixed.ops[k](x), rtol=1e-6, atol=1e-6)
    assert len(chosen) > 1, "uniform logits should sample more than one candidate in 12 draws"
    # The DARTS mixture still runs every candidate.
    for key in calls:
        calls[key] = 0
    mixed(x, torch.softmax(logits, 0))
    assert all(calls[id(op)] == 1 for op in mixed.ops)


def test_gdas_with_partial_channels_runs_one_candidate_on_the_channel_part():
    torch.manual_seed(0)
    mixed = MixedOp(("conv", "sep_conv", "identity"), 2, 8, 8, pc_k=2)
    calls = _count_calls(mixed)
    w = _gdas(2)(torch.zeros(3, requires_grad=True))
    y = mixed(torch.randn(1, 8, 4, 4), w, single_path=True)
    assert y.shape == (1, 8, 4, 4) and sum(calls.values()) == 1


def test_gdas_cell_arch_logits_get_nonzero_gradients_through_the_sampled_path():
    torch.manual_seed(0)
    arch = CellArch(NORMAL, "op", torch.Generator().manual_seed(0))
    cell = Cell(NORMAL, 2, [4], 4)
    calls = _count_calls(cell)
    weights = arch.edge_weights(_gdas(5))
    out = cell([torch.randn(2, 4, 8, 8)], weights, single_path=True)
    assert sum(calls.values()) == len(NORMAL.edges), "one candidate per edge"
    (out ** 2).mean().backward()
    grad = arch.alpha_segqc_normal.grad
    assert grad is not None and grad.abs().sum() > 0
    # An edge from the cell input whose sampled op is not `zero` passes a gradient to every one of its logits
    # (an edge from a node whose own edges sampled `zero` may see an all-zero input, hence no gradient).
    names = NORMAL.edge_ops(0)
    checked = 0
    for e, w in enumerate(weights):
        if NORMAL.edges[e][0] == 0 and names[sampled_index(w)] != "zero":
            assert torch.all(grad[e] != 0), f"edge {e}"
            checked += 1
    assert checked


@pytest.mark.parametrize("net", ["seg", "qc"])
def test_gdas_supernets_run_one_candidate_per_edge_and_train_their_alphas(net):
    torch.manual_seed(0)
    if net == "seg":
        model = NasUnetSupernet(NasUnetConfig(init_filters=2, depth=2, n_nodes=2), seed=0)
        x = torch.randn(2, 3, 16, 16)
    else:
        model = QcSupernet(QcNetConfig(init_filters=2, n_stages=2, n_nodes=2), seed=0)
        x = torch.randn(2, 6, 16, 16)
    calls = _count_calls(model)
    n_edges = sum(len(m.edges) for m in model.modules() if isinstance(m, Cell))
    out = model(x, _gdas(7))
    assert sum(calls.values()) == n_edges
    loss = (out[0] if isinstance(out, tuple) else out).float().pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.arch_parameters())
    for key in calls:
        calls[key] = 0
    model(x)  # the default weighting is still the DARTS mixture: every candidate
    assert sum(calls.values()) == sum(len(m.ops) for m in model.modules() if isinstance(m, MixedOp))


def test_tau_anneals_linearly_from_start_to_end():
    sched = TauSchedule(10.0, 0.1)
    taus = [sched.at(i, 100) for i in range(100)]
    assert taus[0] == pytest.approx(10.0) and taus[-1] == pytest.approx(0.1)
    assert taus[50] == pytest.approx(10.0 - 9.9 * 50 / 99)
    assert all(a > b for a, b in zip(taus, taus[1:]))
    assert sched.at(0, 1) == 10.0 and sched.at(500, 100) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TauSchedule(1.0, 0.0)


def test_the_sampled_candidate_does_not_depend_on_tau():
    logits = torch.randn(6, 5)
    hot = [sampled_index(w) for w in _gdas(11, tau=10.0)(logits)]
    cold = [sampled_index(w) for w in _gdas(11, tau=0.1)(logits)]
    assert hot == cold
