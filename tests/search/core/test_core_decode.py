"""Decoders on hand-set weights; top-n paths by DP against brute force."""

import numpy as np
import pytest
import torch

from search.core.cells import CellSpec
from search.core.decode import (all_paths, decode_cell, decode_multiscale, path_log_weight, sample_paths,
                                 top_n_paths)
from search.core.genotypes import STEP_KINDS, CellEdge, PathGenotype
from search.core.ops import MSNAS_OPS, SEGQC_DOWN, SEGQC_NORMAL
from search.core.supernets.multiscale import MultiscaleConfig, MultiscaleSupernet, beta_mask

MS_SPEC = CellSpec(1, ("msnas",), "msnas", n_nodes=3, output="concat")
# edges (dst, src): e0 (1,0); e1 (2,0) e2 (2,1); e3 (3,0) e4 (3,1) e5 (3,2)


def _onehot(names, name, big=5.0):
    v = np.zeros(len(names))
    v[names.index(name)] = big
    return v


def test_edge_op_keeps_argmax_gamma_edge_and_best_nonzero_op():
    alphas = [_onehot(MSNAS_OPS, op) for op in ("conv", "zero", "sep_conv", "identity", "max_pool", "dil_conv")]
    alphas[1][MSNAS_OPS.index("dil_conv")] = 2.0  # zero wins edge 1, dil_conv is the best non-zero op
    gamma = np.array([0.0, 3.0, 0.0, 0.0, 0.0, 4.0])  # node 2 keeps e1 (from 0), node 3 keeps e5 (from 2)
    g = decode_cell(MS_SPEC, "edge_op", alphas, gamma, edges_per_node=1)
    assert g.edges == (CellEdge(0, 1, "conv"), CellEdge(0, 2, "dil_conv"), CellEdge(2, 3, "dil_conv"))
    assert g.output == "concat"


def test_input_op_pair_takes_the_joint_argmax_pair():
    alphas = [np.zeros(len(MSNAS_OPS)) for _ in range(6)]
    alphas[2][MSNAS_OPS.index("max_pool")] = 3.0  # node 2: pair (1, max_pool)
    alphas[3][MSNAS_OPS.index("zero")] = 9.0  # node 3: zero is strongest overall -> ignored
    alphas[4][MSNAS_OPS.index("sep_conv")] = 2.0  # node 3: best non-zero pair (1, sep_conv)
    g = decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1)
    assert CellEdge(1, 2, "max_pool") in g.edges and CellEdge(1, 3, "sep_conv") in g.edges
    assert len(g.edges) == 3


def test_argmax_structure_drops_edges_lost_to_zero_but_keeps_one_per_node():
    spec = CellSpec(1, ("segqc_down",), "segqc_normal", n_nodes=3)
    alphas = [
        _onehot(SEGQC_DOWN, "down_sep_conv"),  # e0 (0->1)
        _onehot(SEGQC_DOWN, "down_max_pool"),  # e1 (0->2)
        _onehot(SEGQC_NORMAL, "zero"),  # e2 (1->2): dropped
        _onehot(SEGQC_DOWN, "down_conv"),  # e3 (0->3)
        _onehot(SEGQC_NORMAL, "identity"),  # e4 (1->3)
        _onehot(SEGQC_NORMAL, "zero"),  # e5 (2->3): dropped
    ]
    g = decode_cell(spec, "op", alphas)
    assert g.edges == (
        CellEdge(0, 1, "down_sep_conv"), CellEdge(0, 2, "down_max_pool"),
        CellEdge(0, 3, "down_conv"), CellEdge(1, 3, "identity"),
    )
    spec_n = CellSpec(1, ("segqc_normal",), "segqc_normal", n_nodes=1)
    only_zero = np.array([0.0, 1.0, 0.0, 0.0, 4.0])  # zero wins; dil_conv is the best non-zero op
    assert decode_cell(spec_n, "op", [only_zero]).edges == (CellEdge(0, 1, "dil_conv"),)
    top2 = decode_cell(spec, "op", alphas, edges_per_node=2)
    assert len(top2.incoming(3)) == 2


def _random_probs(rng, n_layers, n_scales):
    mask = beta_mask(n_layers, n_scales).numpy()
    logits = rng.normal(size=mask.shape) * 2.0
    probs = np.where(mask, np.exp(logits), 0.0)
    return probs / probs.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("n_layers, n_scales, n", [(4, 3, 5), (5, 4, 8), (3, 2, 30)])
def test_top_n_paths_match_brute_force(n_layers, n_scales, n):
    rng = np.random.default_rng(n_layers * 10 + n_scales)
    for _ in range(3):
        probs = _random_probs(rng, n_layers, n_scales)
        brute = sorted(all_paths(n_layers, n_scales), key=lambda p: -path_log_weight(p, probs))
        dp = top_n_paths(probs, n)
        assert len(dp) == min(n, len(brute))
        assert [p for p, _ in dp] == brute[: len(dp)]
        for p, w in dp:
            assert w == pytest.approx(np.exp(path_log_weight(p, probs)))


def test_paths_and_probabilities_are_consistent():
    probs = _random_probs(np.random.default_rng(0), 4, 3)
    total = sum(np.exp(path_log_weight(p, probs)) for p in all_paths(4, 3))
    assert total == pytest.approx(1.0)  # each vertex samples one outgoing edge: a distribution over paths


def test_decode_multiscale_follows_beta():
    model = MultiscaleSupernet(MultiscaleConfig(n_layers=3, n_scales=3, base_channels=4, pc_k=1), seed=0)
    with torch.no_grad():
        model.beta.zero_()
        model.beta[:, :, 2] = 5.0  # ct everywhere it exists
        model.beta[:, 2, 1] = 5.0  # at the coarsest scale, ns
    g = decode_multiscale(model, n_paths=2)
    assert g.paths[0].kinds == ("ct", "ct", "ns")
    assert len(g.paths) == 2 and all(len(c.edges) == 3 for c in g.cells.values())


def _free_pair_cell():
    """input_op_pair logits: node 1 (0, identity), node 2 (1, max_pool), node 3 (2, conv); the second-best
    op with weights is dil_conv on node 1 (margin 1.0) and sep_conv on node 2 (margin 0.5)."""
    alphas = [np.zeros(len(MSNAS_OPS)) for _ in range(6)]
    alphas[0][MSNAS_OPS.index("identity")] = 3.0
    alphas[0][MSNAS_OPS.index("dil_conv")] = 2.0
    alphas[2][MSNAS_OPS.index("max_pool")] = 3.0
    alphas[2][MSNAS_OPS.index("sep_conv")] = 2.5
    alphas[5][MSNAS_OPS.index("conv")] = 3.0
    return alphas


def test_free_op_cap_swaps_the_cheapest_weight_free_ops_for_the_best_op_with_weights():
    alphas = _free_pair_cell()
    plain = decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1)
    assert plain.edges == (CellEdge(0, 1, "identity"), CellEdge(1, 2, "max_pool"), CellEdge(2, 3, "conv"))
    assert decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1, max_free_ops=2) == plain
    # one weight-free op allowed: node 2's max_pool loses least (sep_conv is 0.5 behind it), node 1 keeps identity
    one = decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1, max_free_ops=1)
    assert one.edges == (CellEdge(0, 1, "identity"), CellEdge(1, 2, "sep_conv"), CellEdge(2, 3, "conv"))
    none = decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1, max_free_ops=0)
    assert none.edges == (CellEdge(0, 1, "dil_conv"), CellEdge(1, 2, "sep_conv"), CellEdge(2, 3, "conv"))


def test_free_op_cap_keeps_the_edge_and_never_picks_zero():
    alphas = [np.zeros(len(MSNAS_OPS)) for _ in range(6)]
    alphas[0][MSNAS_OPS.index("max_pool")] = 4.0
    alphas[0][MSNAS_OPS.index("zero")] = 9.0  # zero is never a replacement either
    g = decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1, max_free_ops=0)
    assert all(e.op not in ("zero", "identity", "max_pool") for e in g.edges)
    assert [(e.src, e.dst) for e in g.edges] == [(e.src, e.dst) for e in
                                                 decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1).edges]
    with pytest.raises(ValueError, match="max_free_ops"):
        decode_cell(MS_SPEC, "input_op_pair", alphas, edges_per_node=1, max_free_ops=-1)


def test_free_op_cap_under_the_op_relaxation_swaps_pools_and_identities():
    spec = CellSpec(1, ("segqc_down",), "segqc_normal", n_nodes=1)
    only_pool = [_onehot(SEGQC_DOWN, "down_max_pool")]
    assert decode_cell(spec, "op", only_pool, max_free_ops=0).edges == (CellEdge(0, 1, "down_conv"),)
    spec_pool = CellSpec(1, ("msnas",), "msnas", n_nodes=1)
    assert decode_cell(spec_pool, "op", [_onehot(MSNAS_OPS, "identity")], max_free_ops=0).edges[0].op == "conv"


# ------------------------------------------------------------------ cells drawn from the distribution
def test_a_drawn_cell_has_one_nonzero_pair_per_node_and_repeats_with_its_seed():
    from search.core.decode import sample_cell

    rng = np.random.default_rng(0)
    alphas = [rng.normal(size=len(MSNAS_OPS)) for _ in range(6)]
    draws = [sample_cell(MS_SPEC, "input_op_pair", alphas, np.random.default_rng(s)) for s in range(20)]
    for g in draws:
        assert [e.dst for e in g.edges] == [1, 2, 3] and all(e.src < e.dst for e in g.edges)
        assert all(e.op != "zero" for e in g.edges)
    assert sample_cell(MS_SPEC, "input_op_pair", alphas, np.random.default_rng(3)) == draws[3]
    assert len(set(draws)) > 1  # near-uniform logits: the draws differ


def test_draws_follow_the_joint_softmax_with_zero_left_out():
    from search.core.decode import sample_cell

    alphas = [np.full(len(MSNAS_OPS), -40.0) for _ in range(6)]
    alphas[0][MSNAS_OPS.index("conv")] = np.log(0.6)  # node 1 (one input): conv .6, identity .2, zero .2
    alphas[0][MSNAS_OPS.index("identity")] = np.log(0.2)
    alphas[0][MSNAS_OPS.index("zero")] = np.log(0.2)
    alphas[1][MSNAS_OPS.index("sep_conv")] = 0.0  # node 2: one pair on each input, equally likely
    alphas[2][MSNAS_OPS.index("max_pool")] = 0.0
    alphas[5][MSNAS_OPS.index("dil_conv")] = 40.0  # node 3: certain
    rng = np.random.default_rng(1)
    draws = [sample_cell(MS_SPEC, "input_op_pair", alphas, rng) for _ in range(2000)]
    conv = np.mean([g.edges[0].op == "conv" for g in draws])
    assert conv == pytest.approx(0.75, abs=0.03)  # .6 / (.6 + .2): zero renormalised away
    assert np.mean([g.edges[1].src == 0 for g in draws]) == pytest.approx(0.5, abs=0.04)
    assert all(g.edges[2] == CellEdge(2, 3, "dil_conv") for g in draws)
    # a certain pair per node: every draw is the argmax cell
    sure = [np.zeros(len(MSNAS_OPS)) for _ in range(6)]
    for e, op in ((0, "conv"), (1, "sep_conv"), (5, "dil_conv")):
        sure[e][MSNAS_OPS.index(op)] = 40.0
    argmax = decode_cell(MS_SPEC, "input_op_pair", sure, edges_per_node=1)
    assert all(sample_cell(MS_SPEC, "input_op_pair", sure, rng) == argmax for _ in range(5))


def test_a_drawn_cell_obeys_the_free_op_cap_and_only_pairs_are_drawn():
    from search.core.decode import sample_cell
    from search.core.ops import PARAMETER_FREE_OPS

    alphas = [np.zeros(len(MSNAS_OPS)) for _ in range(6)]
    for a in alphas:
        a[MSNAS_OPS.index("identity")] = a[MSNAS_OPS.index("max_pool")] = 3.0  # mostly weight-free draws
    rng = np.random.default_rng(2)
    for _ in range(20):
        g = sample_cell(MS_SPEC, "input_op_pair", alphas, rng, max_free_ops=1)
        assert sum(e.op in PARAMETER_FREE_OPS for e in g.edges) <= 1
    with pytest.raises(ValueError, match="relaxation"):
        sample_cell(MS_SPEC, "op", alphas, rng)


def test_drawn_paths_stay_on_the_grid_are_distinct_and_repeat_with_their_seed():
    probs = _random_probs(np.random.default_rng(3), 5, 3)
    paths = sample_paths(probs, 8, np.random.default_rng(1))
    assert len(paths) == 8 and len(set(paths)) == 8
    legal = set(all_paths(5, 3))
    assert all(p in legal and np.isfinite(path_log_weight(p, probs)) for p in paths)
    assert paths == sample_paths(probs, 8, np.random.default_rng(1))
    assert paths != sample_paths(probs, 8, np.random.default_rng(2))


def test_drawn_paths_follow_beta_where_the_heaviest_all_stay_at_full_resolution():
    probs = np.zeros((10, 4, 4))
    probs[:, 0, 1:] = (0.25, 0.25, 0.5)  # scale 0: ns / ct / skip, skip the most probable (as the default searches)
    probs[:, 1:3, :] = 0.25
    probs[:, 3, :] = (1 / 3, 1 / 3, 0.0, 1 / 3)  # the coarsest scale cannot contract
    heaviest = [p for p, _ in top_n_paths(probs, 10)]
    assert all(max(p.scales) == 0 for p in heaviest[:3])
    rng = np.random.default_rng(0)
    first = [sample_paths(probs, 1, rng)[0].kinds[0] for _ in range(2000)]  # one draw each: no distinctness bias
    assert first.count("skip") / 2000 == pytest.approx(0.5, abs=0.04)
    assert first.count("ct") / 2000 == pytest.approx(0.25, abs=0.04) and "ep" not in first
    drawn = sample_paths(probs, 10, np.random.default_rng(0))
    assert sum(max(p.scales) > 0 for p in drawn) >= 8  # 1 - .75^10 = .94 of the walks leave scale 0


def test_a_distribution_with_fewer_paths_than_asked_gives_what_it_has():
    probs = np.zeros((3, 2, 4))
    probs[:, 0, STEP_KINDS.index("skip")] = 1.0  # one path only
    probs[:, 1, STEP_KINDS.index("skip")] = 1.0
    assert sample_paths(probs, 5, np.random.default_rng(0), max_draws=20) == [PathGenotype(("skip",) * 3)]
