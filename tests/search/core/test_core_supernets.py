"""Cells and supernets at tiny sizes: forward + backward, parameter split, relaxations, latency sites."""

import pytest
import torch

from search.core.cells import CellArch, CellSpec
from search.core.latency_sites import collect_latency_keys, trace_sites
from search.core.mixed import ArchWeighting
from search.core.supernets.multiscale import MultiscaleConfig, MultiscaleSupernet
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet, unet_plan
from search.core.supernets.qcnet import QcNetConfig, QcSupernet, qc_input

SPEC = CellSpec(2, ("segqc_down", "segqc_down"), "segqc_normal", n_nodes=3)


def _node_sums(arch, weights):
    spec = arch.spec
    return [float(sum(weights[e].detach().sum() for e in spec.incoming(d))) for d in range(spec.n_inputs, spec.n_inputs + spec.n_nodes)]


def test_relaxations_normalise_as_the_papers_say():
    gen = torch.Generator().manual_seed(0)
    op = CellArch(SPEC, "op", gen)
    assert all(float(w.detach().sum()) == pytest.approx(1.0) for w in op.edge_weights())
    for rel in ("edge_op", "input_op_pair"):
        arch = CellArch(SPEC, rel, gen)
        with torch.no_grad():
            for p in arch.parameters():
                p.normal_(generator=gen)
        assert _node_sums(arch, arch.edge_weights()) == pytest.approx([1.0, 1.0, 1.0])
        assert _node_sums(arch, arch.edge_weights(ArchWeighting.gumbel(1))) == pytest.approx([1.0, 1.0, 1.0])
    assert [n for n, _ in CellArch(SPEC, "edge_op", gen).named_parameters()] == [
        "alpha_segqc_down", "alpha_segqc_normal", "gamma"
    ]


def _check_split_and_grads(model):
    arch = {id(p) for p in model.arch_parameters()}
    weight = {id(p) for p in model.weight_parameters()}
    assert arch and weight and not arch & weight
    assert arch | weight == {id(p) for p in model.parameters()}
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} got no gradient"


def test_nasunet_supernet_forward_backward():
    model = NasUnetSupernet(NasUnetConfig(depth=2, init_filters=4), seed=0)
    logits, uncertainty = model(torch.randn(2, 3, 16, 16), ArchWeighting.gumbel(0))
    assert logits.shape == (2, 2, 16, 16) and uncertainty.shape == (2, 1, 16, 16)
    (logits.square().mean() + uncertainty.mean()).backward()
    _check_split_and_grads(model)
    assert {n.split(".")[1] for n, _ in model.named_arch_parameters()} == {"down", "up"}
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 3, 18, 16))


def test_unet_plan_wires_skips_at_the_output_scale():
    plan = unet_plan(3)
    scales = [0] + [p[2] for p in plan]
    for kind, _s_in, s_out, _pp, skip in plan:
        if kind == "up":
            assert scales[skip] == s_out and skip <= 3


def test_qc_supernet_forward_backward():
    cfg = QcNetConfig(num_classes=2, init_filters=4, n_stages=2)
    model = QcSupernet(cfg, seed=0)
    image, seg = torch.randn(2, 3, 16, 16), torch.randn(2, 2, 16, 16)
    x = qc_input(image, seg, torch.rand(2, 1, 16, 16))
    assert x.shape[1] == cfg.in_channels
    dice = model(x)
    assert dice.shape == (2,) and ((dice > 0) & (dice < 1)).all()
    dice.sum().backward()
    _check_split_and_grads(model)


@pytest.mark.parametrize("dims, relaxation", [(3, "edge_op"), (3, "input_op_pair"), (2, "edge_op")])
def test_multiscale_supernet_forward_backward(dims, relaxation):
    cfg = MultiscaleConfig(n_layers=3, n_scales=3, base_channels=4, dims=dims, relaxation=relaxation, pc_k=2)
    model = MultiscaleSupernet(cfg, seed=0)
    x = torch.randn(2, 1, *((2, 8, 8) if dims == 3 else (8, 8)))
    y = model(x, ArchWeighting.gumbel(0))
    assert y.shape == (2, 4, *x.shape[2:])
    y.square().mean().backward()
    _check_split_and_grads(model)
    p = model.beta_probs().detach()
    assert torch.allclose(p.sum(-1), torch.ones(3, 3))
    assert float(p[:, 0, 0].sum()) == 0.0 and float(p[:, 2, 2].sum()) == 0.0  # no ep at scale 0, no ct at the top


def test_seeds_make_supernets_reproducible():
    a, b = NasUnetSupernet(NasUnetConfig(depth=1), seed=3), NasUnetSupernet(NasUnetConfig(depth=1), seed=3)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), na
    c = NasUnetSupernet(NasUnetConfig(depth=1), seed=4)
    assert not torch.equal(a.cell_arch["down"].alpha_segqc_down, c.cell_arch["down"].alpha_segqc_down)


def test_latency_sites_cover_every_op_with_deployed_channels():
    cfg = MultiscaleConfig(n_layers=2, n_scales=2, base_channels=4, pc_k=4)
    model = MultiscaleSupernet(cfg, seed=0)
    sites = trace_sites(model, (1, 2, 8, 8))
    assert set(sites.cells) == {f"cells.{n}" for n in model.cells}
    for site in sites.cells.values():
        assert all(edge is not None and len(edge) == 6 for edge in site.edge_keys)
        assert all(k is None or k.c_in in (4, 8) for edge in site.edge_keys for k in edge)  # not C / 4
        assert [k is None for k in site.edge_keys[0]] == [False] * 5 + [True]  # zero is free
        assert site.fixed_keys[-1].op == "conv1x1" and site.fixed_keys[-1].c_in == 3 * site.fixed_keys[-1].c_out
    keys = collect_latency_keys(model, (1, 2, 8, 8))
    assert {k.op for k in keys} >= {"stem", "conv", "sep_conv", "upsample", "pool2x", "classifier", "conv1x1"}
    assert all(k.op != "zero" and k.dims == 3 for k in keys)
    ct = next(s for s in sites.cells.values() if s.cell_type == "ct")
    assert [k.op for k in ct.fixed_keys[:2]] == ["pool2x", "conv1x1"]
    assert ct.edge_keys[0][0].shape == (2, 4, 4)


def test_nasunet_sites_include_fixed_ops():
    model = NasUnetSupernet(NasUnetConfig(depth=2), seed=0)
    keys = collect_latency_keys(model, (3, 16, 16))
    ops = {k.op for k in keys}
    assert {"stem", "seg_head", "conv1x1", "upsample", "down_avg_pool", "up_sep_conv", "identity"} <= ops
    assert model.training  # tracing restores the mode
