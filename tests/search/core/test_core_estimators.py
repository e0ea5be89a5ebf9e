"""Latency estimators: gradients w.r.t. every arch parameter, agreement with the discrete networks."""

import pytest
import torch

from search.core.decode import decode_multiscale, decode_nasunet, decode_qc
from search.core.derived.multiscale import FusedMultiscaleNet
from search.core.derived.nasunet import DerivedNasUnet
from search.core.derived.qcnet import DerivedQcNet
from search.core.estimators import AdditiveLatency, PathProbabilityLatency, PathwiseLatency, predict_latency
from search.core.mixed import ArchWeighting
from search.core.ops import MSNAS_OPS, SEGQC_NORMAL
from search.core.supernets.multiscale import MultiscaleConfig, MultiscaleSupernet
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
from search.core.supernets.qcnet import QcNetConfig, QcSupernet
from search.latency.lut import LatencyTable, MissingLatencyKey

SEG = NasUnetConfig(depth=2, init_filters=4)
QC = QcNetConfig(init_filters=4, n_stages=2)


def _ms(relaxation="edge_op"):
    cfg = MultiscaleConfig(n_layers=3, n_scales=3, base_channels=4, pc_k=2, relaxation=relaxation)
    return cfg, MultiscaleSupernet(cfg, seed=0)


def _assert_all_arch_grads(model):
    for name, p in model.named_arch_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no latency gradient for {name}"


def test_additive_latency_gradients_and_one_hot_equals_the_derived_networks(synthetic_table):
    seg, qc = NasUnetSupernet(SEG, seed=0), QcSupernet(QC, seed=0)
    est = AdditiveLatency([(seg, (3, 16, 16)), (qc, (6, 16, 16))], synthetic_table)
    lat = est(ArchWeighting.gumbel(0))
    lat.backward()
    _assert_all_arch_grads(seg)
    _assert_all_arch_grads(qc)
    with torch.no_grad():  # sharpen alpha until softmax is one-hot: the estimate becomes a plain sum
        for p in seg.arch_parameters() + qc.arch_parameters():
            p.normal_(generator=torch.Generator().manual_seed(1)).mul_(1e4)
        # zero never wins (else a node left without edges keeps its best non-zero edge, which the
        # estimator, like the paper's, charged 0 ms for)
        for model in (seg, qc):
            for arch in model.cell_arch.values():
                arch.alpha_segqc_normal[:, SEGQC_NORMAL.index("zero")] = -1e5
    discrete = predict_latency(DerivedNasUnet(decode_nasunet(seg), SEG), (3, 16, 16), synthetic_table)
    discrete += predict_latency(DerivedQcNet(decode_qc(qc), QC), (6, 16, 16), synthetic_table)
    assert float(est().detach()) == pytest.approx(discrete, rel=1e-5)


def test_pathwise_latency_gradients_and_one_hot_equals_the_derived_network(synthetic_table):
    cfg, model = _ms()
    with torch.no_grad():  # make the top paths use ep, ns and ct cells
        model.beta[0, 0, 2] = 2.0
        model.beta[1, 1, 0] = 2.0
        model.beta[2, 0, 1] = 2.0
    est = PathwiseLatency(model, synthetic_table, (1, 2, 8, 8), n_paths=2)
    est(ArchWeighting.gumbel(0)).backward()
    _assert_all_arch_grads(model)
    with torch.no_grad():
        for p in model.arch_parameters():
            p.normal_(generator=torch.Generator().manual_seed(2)).mul_(1e4)
        for arch in model.cell_arch.values():
            arch.alpha_msnas[:, MSNAS_OPS.index("zero")] = -1e5
    est1 = PathwiseLatency(model, synthetic_table, (1, 2, 8, 8), n_paths=1)
    derived = FusedMultiscaleNet(decode_multiscale(model, n_paths=1), cfg)
    assert float(est1().detach()) == pytest.approx(predict_latency(derived, (1, 2, 8, 8), synthetic_table), rel=1e-5)


def test_path_probability_latency_gradients_and_limits(synthetic_table):
    cfg, model = _ms("input_op_pair")
    est = PathProbabilityLatency(model, synthetic_table, (1, 2, 8, 8))
    est().backward()
    _assert_all_arch_grads(model)
    with torch.no_grad():  # a one-hot path of skips: only the stem and the scale-0 head remain
        model.beta.zero_()
        model.beta[:, :, 3] = 1e4
    skip_only = float(est().detach())
    assert skip_only == pytest.approx(est.stem_ms + est.head_ms[0], rel=1e-5)
    with torch.no_grad():  # one ns cell at layer 1, skips elsewhere: + that cell's longest path
        model.beta[1, 0, 1] = 2e4
        for p in model.cell_arch.parameters():
            p.zero_()
        model.cell_arch["ns"].alpha_msnas[:, 0] = 1e4  # conv on every pair: the chain 0->1->2->3 is longest
    cell = est.cells["l1_s0_ns"]
    conv = [float(lut[0]) for lut in cell.edge_luts]
    # joint softmax over (input, op) pairs splits a node's mass over its inputs' conv pairs
    expected_edges = [conv[0], conv[1] / 2, conv[2] / 2, conv[3] / 3, conv[4] / 3, conv[5] / 3]
    node1 = expected_edges[0]
    node2 = max(expected_edges[1], node1 + expected_edges[2])
    node3 = max(expected_edges[3], node1 + expected_edges[4], node2 + expected_edges[5])
    want = skip_only + cell.fixed_ms + max(node1, node2, node3)
    assert float(est().detach()) == pytest.approx(want, rel=1e-4)


def test_missing_key_names_it():
    model = MultiscaleSupernet(MultiscaleConfig(n_layers=1, n_scales=2, base_channels=4, pc_k=1), seed=0)
    with pytest.raises(MissingLatencyKey, match=r"no latency entry for \w+\|3d\|cin\d+\|cout\d+\|in\d+x\d+x\d+\|s[12]"):
        PathProbabilityLatency(model, LatencyTable(), (1, 2, 8, 8))


def test_inputs_by_use_charges_a_droppable_alignment_only_when_read(synthetic_table):
    from search.core.ops import SEGQC_DOWN_OR_ZERO, SEGQC_UP_OR_ZERO

    # the paper's space has no droppable input with an alignment: both charges are one number
    seg = NasUnetSupernet(SEG, seed=0)
    always = AdditiveLatency([(seg, (3, 16, 16))], synthetic_table)
    by_use = AdditiveLatency([(seg, (3, 16, 16))], synthetic_table, inputs_by_use=True)
    with torch.no_grad():
        assert float(by_use(ArchWeighting.gumbel(3))) == float(always(ArchWeighting.gumbel(3)))

    cfg = NasUnetConfig(depth=2, init_filters=4, n_nodes=2, droppable_inputs=True, keep_prev=True)
    seg = NasUnetSupernet(cfg, seed=0)
    always = AdditiveLatency([(seg, (3, 16, 16))], synthetic_table)
    by_use = AdditiveLatency([(seg, (3, 16, 16))], synthetic_table, inputs_by_use=True)
    soft_always, soft_by_use = always(), by_use()
    assert float(soft_by_use.detach()) < float(soft_always.detach())  # read with probability < 1 under the near-uniform alphas
    soft_by_use.backward()  # the zero logits of the prev-prev edges learn what dropping saves
    down_zero = seg.cell_arch["down"].alpha_segqc_down_or_zero.grad[:, SEGQC_DOWN_OR_ZERO.index("zero")]
    assert (down_zero < 0).all()
    with torch.no_grad():  # one-hot: every prev-prev edge drops its input, nothing else is zero
        for p in seg.arch_parameters():
            p.normal_(generator=torch.Generator().manual_seed(1)).mul_(1e4)
        for arch in seg.cell_arch.values():
            arch.alpha_segqc_normal[:, SEGQC_NORMAL.index("zero")] = -1e5
        seg.cell_arch["down"].alpha_segqc_down_or_zero[:, SEGQC_DOWN_OR_ZERO.index("zero")] = 1e5
        seg.cell_arch["up"].alpha_segqc_up_or_zero[:, SEGQC_UP_OR_ZERO.index("zero")] = 1e5
    genotype = decode_nasunet(seg)
    assert all(edge.src != 0 for cell in (genotype.down, genotype.up) for edge in cell.edges)
    discrete = predict_latency(DerivedNasUnet(genotype, cfg), (3, 16, 16), synthetic_table)
    assert float(by_use().detach()) == pytest.approx(discrete, rel=1e-5)
    assert float(always().detach()) > discrete + 0.01  # charged for alignments the network does not build
